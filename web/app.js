// app.js — the baleine web chat: conversations stored by the server (/api/conversations), answers streamed from
// /v1/chat/completions (SSE), reasoning shown in a collapsible "thinking" section. Plain JS, no build step.
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
      const content = document.createElement("div");
      content.className = "content";
      content.innerHTML = window.renderMarkdown(m.content || "");
      bubble.append(content);
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

  function renderMessages() {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.textContent = "";
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
    $("system-prompt").value = c.system_prompt;
    $("temperature").value = c.temperature;
    $("temperature-value").textContent = c.temperature;
    location.hash = id;
    renderConversations();
    renderMessages();
  }

  async function ensureConversation(firstText) {
    if (state.current) return state.current;
    const c = await api("POST", "/api/conversations", {
      title: firstText.slice(0, 60), model: $("model").value, system_prompt: $("system-prompt").value,
      temperature: Number($("temperature").value),
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
    const conv = state.current;
    const model = $("model").value;
    const answer = { role: "assistant", content: "", reasoning: "", model, status: "streaming", reasoning_seconds: 0 };
    const body = {
      model, messages: requestMessages(), stream: true, stream_options: { include_usage: true },
      temperature: Number($("temperature").value), conversation_id: conv.id,
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
