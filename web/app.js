// app.js — the baleine web chat: conversations stored by the server (/api/conversations), answers streamed from
// /v1/chat/completions (SSE), reasoning shown in a collapsible "thinking" section. A conversation bound to an
// assistant (agent.js) is answered by /v1/responses instead: the agent loop's steps stream in as tool cards,
// and the answer (with its steps and citations) is saved to the conversation. Plain JS, no build step.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { config: null, conversations: [], current: null, messages: [], streaming: null, prices: {} };

  // ---------------------------------------------------------------------------------------------------------
  // Server calls
  // ---------------------------------------------------------------------------------------------------------
  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = localStorage.getItem("baleine.apiKey");
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }
  async function api(method, path, body) {
    const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) throw new Error((data && data.error && data.error.message) || "HTTP " + r.status);
    return data;
  }
  function showError(msg) {
    const e = $("error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------------------------------
  function renderConversations() {
    const ul = $("conversations");
    ul.textContent = "";
    for (const c of state.conversations) {
      const li = document.createElement("li");
      if (state.current && c.id === state.current.id) li.className = "active";
      const a = document.createElement("a");
      a.href = "#" + c.id;
      a.textContent = c.title || "New chat";
      const bound = c.assistant_id && window.baleineAgent.assistants().find((x) => x.id === c.assistant_id);
      if (bound) a.append(Object.assign(document.createElement("span"), { className: "badge", textContent: bound.name || "assistant" }));
      a.addEventListener("click", (ev) => { ev.preventDefault(); openConversation(c.id); $("sidebar").classList.remove("open"); });
      const del = document.createElement("button");
      del.type = "button";
      del.title = "Delete";
      del.textContent = "✕";
      del.addEventListener("click", async () => {
        await api("DELETE", "/api/conversations/" + c.id);
        if (state.current && state.current.id === c.id) { state.current = null; state.messages = []; renderMessages(); }
        await loadConversations();
      });
      li.append(a, del);
      ul.append(li);
    }
  }

  function costOf(m) {
    return typeof m.cost_usd === "number" && m.cost_usd > 0 ? "$" + m.cost_usd.toFixed(6) : "";
  }

  function messageElement(m, isLast) {
    const div = document.createElement("div");
    div.className = "message " + m.role + (m.status === "streaming" ? " streaming" : "");
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    if (m.role === "assistant") {
      if (m.reasoning) {
        const details = document.createElement("details");
        details.className = "thinking";
        const summary = document.createElement("summary");
        summary.textContent = m.status === "streaming" && !m.content
          ? "Thinking…"
          : "Thought for " + (m.reasoning_seconds || 0).toFixed(1) + " s";
        const body = document.createElement("div");
        body.className = "reasoning";
        body.textContent = m.reasoning;
        details.append(summary, body);
        if (m.openThinking) details.open = true;
        details.addEventListener("toggle", () => { m.openThinking = details.open; });
        bubble.append(details);
      }
      const key = m.id ? String(m.id) : "live";
      if (m.tool_steps && m.tool_steps.length) bubble.append(window.baleineAgent.toolCards(m, key));
      const content = document.createElement("div");
      content.className = "content";
      content.innerHTML = window.renderMarkdown(m.content || "");
      bubble.append(content);
      if (m.citations && m.citations.length) bubble.append(window.baleineAgent.citationList(m, key));
    } else {
      bubble.textContent = m.content;
    }
    div.append(bubble);
    const meta = document.createElement("div");
    meta.className = "meta";
    if (m.role === "assistant") {
      const parts = [];
      if (m.model) parts.push(m.model);
      if (m.completion_tokens) parts.push(m.prompt_tokens + " prompt + " + m.completion_tokens + " completion tokens");
      const cost = costOf(m);
      if (cost) parts.push(cost);
      if (m.status === "stopped") parts.push("stopped");
      if (m.status === "interrupted") parts.push("interrupted (the server stopped while writing it)");
      const span = document.createElement("span");
      span.className = "usage";
      span.textContent = parts.join(" · ");
      meta.append(span);
      if (isLast && !state.streaming) {
        const regen = document.createElement("button");
        regen.type = "button";
        regen.className = "regenerate";
        regen.textContent = "Regenerate";
        regen.addEventListener("click", regenerate);
        meta.append(regen);
      }
    }
    div.append(meta);
    return div;
  }

  // ---------------------------------------------------------------------------------------------------------
  // The selected model: its capabilities (from /api/config), the DeepThink switch and the intro note
  // ---------------------------------------------------------------------------------------------------------
  function selectedRoute() {
    return ((state.config && state.config.models) || []).find((m) => m.id === $("model").value) || null;
  }

  // DeepThink follows the model's `thinking` capability: a switch for "toggle" (starting at the model's default),
  // on and locked for "always", hidden for "never"; the effort applies whenever the answer thinks.
  function syncDeepThink() {
    const route = selectedRoute();
    const mode = route ? route.thinking : "never";
    $("deepthink").hidden = mode === "never";
    const box = $("deepthink-on");
    box.disabled = mode !== "toggle";
    if (mode === "always") box.checked = true;
    else if (mode === "toggle") box.checked = route.thinking_default;
    $("effort").disabled = !box.checked;
  }

  // The thinking fields of a chat request, as DeepSeek's API takes them (absent when the model cannot think).
  function thinkingFields() {
    const route = selectedRoute();
    if (!route || route.thinking === "never") return {};
    const on = route.thinking === "always" || $("deepthink-on").checked;
    const f = on ? { reasoning_effort: $("effort").value } : {};
    if (route.thinking === "toggle") f.thinking = { type: on ? "enabled" : "disabled" };
    return f;
  }

  // What an empty conversation opens on: what the loaded model is and prompts to try with it.
  function introElement() {
    const route = selectedRoute();
    const div = document.createElement("div");
    div.className = "intro";
    if (!route) return div;
    const head = document.createElement("p");
    const strong = document.createElement("strong");
    strong.textContent = route.id;
    head.append(strong, document.createTextNode(
      (state.config.model && state.config.model !== route.id ? " (served by the loaded model " + state.config.model + ")" : "") +
      ": chat format " + route.chat_format + ", context " + state.config.context + " tokens."));
    const caps = document.createElement("p");
    const thinking = { always: "always thinks before answering", toggle: "thinks on request (DeepThink, " +
      (route.thinking_default ? "on" : "off") + " by default)", never: "answers without a thinking phase" }[route.thinking];
    caps.textContent = "It " + thinking + "; " + (route.vision ? "it reads images." : "text only (no images).");
    const examples = document.createElement("div");
    examples.className = "examples";
    const prompts = ["Write a haiku about the sea.", "Explain what a hash table is in two sentences."];
    if (route.thinking !== "never") prompts.push("A bat and a ball cost $1.10; the bat costs $1 more than the ball. What does the ball cost?");
    for (const text of prompts) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.addEventListener("click", () => { $("input").value = text; $("input").focus(); });
      examples.append(b);
    }
    div.append(head, caps, examples);
    return div;
  }

  function renderMessages() {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.textContent = "";
    if (!state.messages.length && state.config) box.append(introElement());
    state.messages.forEach((m, i) => box.append(messageElement(m, i === state.messages.length - 1)));
    if (atBottom || state.streaming) box.scrollTop = box.scrollHeight;
    $("send").hidden = !!state.streaming;
    $("stop").hidden = !state.streaming;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Conversations
  // ---------------------------------------------------------------------------------------------------------
  async function loadConversations() {
    state.conversations = (await api("GET", "/api/conversations")).data;
    renderConversations();
  }

  async function openConversation(id) {
    const c = await api("GET", "/api/conversations/" + id);
    state.current = c;
    state.messages = c.messages;
    $("model").value = c.model;
    syncDeepThink();
    $("system-prompt").value = c.system_prompt;
    $("temperature").value = c.temperature;
    $("temperature-value").textContent = c.temperature;
    showAssistant(c.assistant_id || "");
    location.hash = id;
    renderConversations();
    renderMessages();
  }

  async function ensureConversation(firstText) {
    if (state.current) return state.current;
    const c = await api("POST", "/api/conversations", {
      title: firstText.slice(0, 60), model: $("model").value, system_prompt: $("system-prompt").value,
      temperature: Number($("temperature").value), assistant_id: $("assistant").value || null,
    });
    state.current = c;
    state.messages = [];
    location.hash = c.id;
    await loadConversations();
    return c;
  }

  async function saveSettings() {
    if (!state.current) return;
    state.current = await api("PATCH", "/api/conversations/" + state.current.id, {
      model: $("model").value, system_prompt: $("system-prompt").value, temperature: Number($("temperature").value),
    });
  }

  // The assistant picker: chosen before the first message of a new chat, it binds the conversation (stored with it).
  function renderAssistants(list) {
    const select = $("assistant");
    const want = state.current ? state.current.assistant_id || "" : select.value;
    select.textContent = "";
    select.append(new Option("No assistant", ""));
    for (const a of list) select.append(new Option("Assistant: " + (a.name || a.id), a.id));
    showAssistant(want);
    renderConversations();  // their assistant badges
  }

  function showAssistant(id) {
    const select = $("assistant");
    if (id && ![...select.options].some((o) => o.value === id)) select.append(new Option("(deleted assistant)", id));
    select.value = id;
    syncBound();
  }

  // A bound conversation follows its assistant's instructions and sampling: the chat's own settings are greyed out.
  function syncBound() {
    const bound = !!$("assistant").value;
    for (const id of ["system-prompt", "temperature"]) {
      $(id).disabled = bound;
      $(id).title = bound ? "the assistant's instructions and sampling apply" : "";
    }
  }

  async function changeAssistant() {
    syncBound();
    if (!state.current) return;
    try {
      state.current = await api("PATCH", "/api/conversations/" + state.current.id, { assistant_id: $("assistant").value || null });
    } catch (e) {
      showError(e.message);
      showAssistant(state.current.assistant_id || "");
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Generation
  // ---------------------------------------------------------------------------------------------------------
  function requestMessages() {
    const out = [];
    const system = $("system-prompt").value.trim();
    if (system) out.push({ role: "system", content: system });
    for (const m of state.messages)
      if ((m.role === "user" || m.role === "assistant") && m.status !== "streaming") out.push({ role: m.role, content: m.content });
    return out;
  }

  async function generate() {
    if (state.current.assistant_id) return generateWithAssistant();
    const conv = state.current;
    const model = $("model").value;
    const answer = { role: "assistant", content: "", reasoning: "", model, status: "streaming", reasoning_seconds: 0 };
    const body = {
      model, messages: requestMessages(), stream: true, stream_options: { include_usage: true },
      temperature: Number($("temperature").value), conversation_id: conv.id, ...thinkingFields(),
    };
    state.messages.push(answer);
    const controller = new AbortController();
    state.streaming = controller;
    renderMessages();
    const started = performance.now();
    let reasoningStart = null;
    try {
      const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
      if (!r.ok) {
        const e = await r.json().catch(() => null);
        throw new Error((e && e.error && e.error.message) || "HTTP " + r.status);
      }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let lastRender = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message);
            if (chunk.usage) {
              answer.prompt_tokens = chunk.usage.prompt_tokens;
              answer.completion_tokens = chunk.usage.completion_tokens;
              answer.cost_usd = chunk.usage.cost_usd;
            }
            for (const c of chunk.choices || []) {
              const d = c.delta || {};
              if (d.reasoning_content) {
                if (reasoningStart === null) reasoningStart = performance.now();
                answer.reasoning += d.reasoning_content;
              }
              if (d.content) {
                if (reasoningStart !== null && !answer.reasoning_seconds) answer.reasoning_seconds = (performance.now() - reasoningStart) / 1000;
                answer.content += d.content;
              }
            }
          }
        }
        if (performance.now() - lastRender > 50) { lastRender = performance.now(); renderMessages(); }
      }
      if (reasoningStart !== null && !answer.reasoning_seconds) answer.reasoning_seconds = (performance.now() - reasoningStart) / 1000;
      answer.status = "done";
    } catch (e) {
      if (e.name === "AbortError") answer.status = "stopped";
      else { answer.status = "error"; showError(e.message); }
    }
    state.streaming = null;
    answer.elapsed = (performance.now() - started) / 1000;
    renderMessages();
    // The server saved the answer (with its token counts and cost); reload to show what is stored.
    await new Promise((res) => setTimeout(res, answer.status === "stopped" ? 300 : 0));
    if (state.current && state.current.id === conv.id) {
      const open = answer.openThinking;
      await openConversation(conv.id);
      const last = state.messages[state.messages.length - 1];
      if (last && last.role === "assistant") { last.openThinking = open; renderMessages(); }
    }
  }

  // Server-sent events of a fetch response: calls onEvent(name, data) for each complete event.
  async function readEvents(r, onEvent, onChunk) {
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        for (const line of event.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ") && line.slice(6) !== "[DONE]") onEvent(name, JSON.parse(line.slice(6)));
        }
      }
      onChunk();
    }
  }

  // The raw text of a model turn while it streams: reasoning up to </think>, then the answer up to the first
  // tool-call marker (the parsed turn replaces both when it ends).
  function splitLive(raw, reasoningModel) {
    let reasoning = "", content = raw;
    const end = raw.indexOf("</think>");
    if (end >= 0) { reasoning = raw.slice(0, end); content = raw.slice(end + 8); }
    else if (reasoningModel || raw.trimStart().startsWith("<think>")) { reasoning = raw; content = ""; }
    reasoning = reasoning.replace("<think>", "");
    const marker = content.indexOf("<｜tool");
    if (marker >= 0) content = content.slice(0, marker);
    return { reasoning, content };
  }

  async function generateWithAssistant() {
    const conv = state.current;
    const assistant = window.baleineAgent.assistants().find((a) => a.id === conv.assistant_id);
    const model = (assistant && assistant.model) || $("model").value;
    const route = (state.config.models || []).find((m) => m.id === model);
    const answer = { role: "assistant", content: "", reasoning: "", model, status: "streaming", reasoning_seconds: 0,
                     tool_steps: [], citations: [] };
    const input = requestMessages().filter((m) => m.role !== "system");  // the assistant's instructions apply
    const body = { assistant_id: conv.assistant_id, input, stream: true };
    if (!assistant || !assistant.model) body.model = model;
    state.messages.push(answer);
    const controller = new AbortController();
    state.streaming = controller;
    renderMessages();
    let doneReasoning = "", raw = "", reasoningStart = null, lastRender = 0;
    const onEvent = (name, e) => {
      if (name === "error") throw new Error(e.message || "agent error");
      if (e.type === "agent.model_delta") {
        raw += e.delta;
        const live = splitLive(raw, route && route.reasoning);
        if (live.reasoning && reasoningStart === null) reasoningStart = performance.now();
        answer.reasoning = doneReasoning + live.reasoning;
        answer.content = live.content;
      } else if (e.type === "agent.model_turn") {
        raw = "";
        if (e.reasoning) doneReasoning += (doneReasoning ? "\n\n" : "") + e.reasoning;
        answer.reasoning = doneReasoning;
        answer.content = e.content;
        if (reasoningStart !== null) answer.reasoning_seconds = (performance.now() - reasoningStart) / 1000;
      } else if (e.type === "agent.tool_call") {
        answer.tool_steps.push({ id: e.call.id, name: e.call.name, arguments: e.call.arguments, status: "running", step: e.step,
                                 open: true });
      } else if (e.type === "agent.tool_result") {
        const s = answer.tool_steps.find((x) => x.id === e.call.id && x.status === "running") ||
                  answer.tool_steps.find((x) => x.status === "running");
        if (s) Object.assign(s, { status: e.tool_error ? "error" : "done", result: e.result, tool_error: e.tool_error,
                                  citations: e.citations || [], seconds: e.seconds });
        for (const c of e.citations || []) answer.citations.push(c);
      } else if (e.type === "agent.error") {
        answer.status = "error";
        showError(e.message);
      } else if (e.type === "response.completed") {
        const u = e.response.usage || {};
        answer.prompt_tokens = u.input_tokens;
        answer.completion_tokens = u.output_tokens;
        answer.content = e.response.output_text;
      }
      const step = e.type === "agent.tool_call" || e.type === "agent.tool_result";  // cards show at once
      if (step || performance.now() - lastRender > 50) { lastRender = performance.now(); renderMessages(); }
    };
    try {
      const r = await fetch("/v1/responses", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
      if (!r.ok) {
        const e = await r.json().catch(() => null);
        throw new Error((e && e.error && e.error.message) || "HTTP " + r.status);
      }
      await readEvents(r, onEvent, () => {});
      if (answer.status === "streaming") answer.status = "done";
    } catch (e) {
      if (e.name === "AbortError") answer.status = "stopped";
      else { answer.status = "error"; showError(e.message); }
    }
    state.streaming = null;
    for (const s of answer.tool_steps) if (s.status === "running") s.status = "error";
    renderMessages();
    // Saved to the conversation with its steps and citations (the server saves /chat answers itself, not these).
    const steps = answer.tool_steps.map((s) => ({ id: s.id, name: s.name, arguments: s.arguments, status: s.status, step: s.step,
                                                  result: s.result, tool_error: !!s.tool_error, citations: s.citations || [],
                                                  seconds: s.seconds || 0 }));
    await api("POST", "/api/conversations/" + conv.id + "/messages", {
      role: "assistant", content: answer.content || "", reasoning: answer.reasoning, reasoning_seconds: answer.reasoning_seconds,
      model, prompt_tokens: answer.prompt_tokens || 0, completion_tokens: answer.completion_tokens || 0,
      status: answer.status === "streaming" ? "error" : answer.status, tool_steps: steps, citations: answer.citations,
    });
    if (state.current && state.current.id === conv.id) {
      const open = answer.openThinking;
      await openConversation(conv.id);
      const last = state.messages[state.messages.length - 1];
      if (last && last.role === "assistant") { last.openThinking = open; renderMessages(); }
    }
  }

  // body[data-busy] from a click until the stored answer is shown (tests wait on it).
  async function busy(work) {
    document.body.dataset.busy = "1";
    try {
      await work();
    } finally {
      delete document.body.dataset.busy;
    }
  }

  function send(ev) {
    if (ev) ev.preventDefault();
    const text = $("input").value.trim();
    if (!text || state.streaming) return;
    showError("");
    return busy(() => sendText(text));
  }

  async function sendText(text) {
    try {
      const conv = await ensureConversation(text);
      const saved = await api("POST", "/api/conversations/" + conv.id + "/messages", { role: "user", content: text });
      state.messages.push(saved);
      $("input").value = "";
      await generate();
      await loadConversations();
    } catch (e) {
      showError(e.message);
    }
  }

  function regenerate() {
    return busy(regenerateLast);
  }

  async function regenerateLast() {
    const last = state.messages[state.messages.length - 1];
    if (!last || last.role !== "assistant" || state.streaming) return;
    try {
      if (last.id) await api("DELETE", "/api/conversations/" + state.current.id + "/messages/" + last.id);
      state.messages.pop();
      await generate();
    } catch (e) {
      showError(e.message);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------------------
  async function start() {
    $("api-key").value = localStorage.getItem("baleine.apiKey") || "";
    $("api-key").addEventListener("change", () => { localStorage.setItem("baleine.apiKey", $("api-key").value); init(); });
    $("composer").addEventListener("submit", send);
    $("input").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && !ev.shiftKey) send(ev); });
    $("stop").addEventListener("click", () => { if (state.streaming) state.streaming.abort(); });
    $("new-chat").addEventListener("click", () => {
      state.current = null; state.messages = []; location.hash = ""; renderConversations(); renderMessages(); $("input").focus();
    });
    $("toggle-settings").addEventListener("click", () => { $("settings").hidden = !$("settings").hidden; });
    $("toggle-sidebar").addEventListener("click", () => $("sidebar").classList.toggle("open"));
    $("temperature").addEventListener("input", () => { $("temperature-value").textContent = $("temperature").value; });
    for (const id of ["model", "system-prompt", "temperature"]) $(id).addEventListener("change", saveSettings);
    $("model").addEventListener("change", () => { syncDeepThink(); if (!state.messages.length) renderMessages(); });
    $("deepthink-on").addEventListener("change", () => { $("effort").disabled = !$("deepthink-on").checked; });
    $("assistant").addEventListener("change", changeAssistant);
    await init();
  }

  async function init() {
    try {
      state.config = await api("GET", "/api/config");
      const select = $("model");
      select.textContent = "";
      for (const m of state.config.models) {
        const o = document.createElement("option");
        o.value = m.id;
        o.textContent = m.id + (m.reasoning ? " (reasoning)" : "");
        select.append(o);
      }
      syncDeepThink();
      await window.baleineAgent.init(api, state.config.models, renderAssistants);
      await loadConversations();
      const id = location.hash.slice(1);
      if (id && state.conversations.some((c) => c.id === id)) await openConversation(id);
      else renderMessages();
      showError("");
    } catch (e) {
      showError(e.message + (/API key/i.test(e.message) ? " — set it under ⚙" : ""));
    }
  }

  start();
})();
