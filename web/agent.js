// agent.js — the web chat's assistants (/v1/assistants: list, create, edit, delete; documents uploaded from a
// file or pasted, with their chunk counts) and the rendering of agent steps: one collapsible card per tool call
// (name, arguments, status, output; file_search passages with their document) and the answer's citations linked
// to those passages. app.js owns the conversations and the streaming; this file exposes window.baleineAgent.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const TOOL_TYPES = ["calculator", "current_datetime", "file_search"];
  const SAMPLING = ["temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty"];
  const GROUNDING = ["grounded_quotes", "quote_search"];
  const ctx = { api: null, models: [], assistants: [], editing: null, onChange: () => {} };

  // ---------------------------------------------------------------------------------------------------------
  // The assistants panel
  // ---------------------------------------------------------------------------------------------------------
  function formError(msg) {
    const e = $("assistant-error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  async function load() {
    ctx.assistants = (await ctx.api("GET", "/v1/assistants?limit=100")).data;
    renderList();
    ctx.onChange(ctx.assistants);
  }

  function renderList() {
    const ul = $("assistant-list");
    ul.textContent = "";
    for (const a of ctx.assistants) {
      const li = el("li");
      li.dataset.id = a.id;
      const tools = (a.tools || []).map((t) => t.type).join(", ");
      li.append(el("span", "assistant-name", a.name || a.id), el("span", "assistant-tools", tools));
      const edit = el("button", "assistant-edit", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => openEditor(a));
      const del = el("button", "assistant-delete", "Delete");
      del.type = "button";
      del.addEventListener("click", async () => {
        try {
          await ctx.api("DELETE", "/v1/assistants/" + a.id);
          if (ctx.editing && ctx.editing.id === a.id) closeEditor();
          await load();
        } catch (e) { formError(e.message); }
      });
      li.append(edit, del);
      ul.append(li);
    }
  }

  function fillModels() {
    const s = $("assistant-model");
    s.textContent = "";
    s.append(new Option("(the conversation's model)", ""));
    for (const m of ctx.models) s.append(new Option(m.id, m.id));
  }

  function choiceValue(c) {
    if (!c) return "auto";
    if (typeof c === "string") return c;
    return c.type === "function" ? "auto" : c.type;
  }

  function openEditor(a) {
    ctx.editing = a || null;
    formError("");
    fillModels();
    $("assistant-form").hidden = false;
    $("assistant-form-title").textContent = a ? "Edit assistant" : "New assistant";
    $("assistant-name").value = a ? a.name : "";
    $("assistant-instructions").value = a ? a.instructions : "";
    $("assistant-model").value = a ? a.model : "";
    const types = new Set(((a && a.tools) || []).map((t) => t.type));
    for (const t of TOOL_TYPES) $("tool-" + t).checked = types.has(t);
    $("assistant-tool-choice").value = choiceValue(a && a.tool_choice);
    for (const k of SAMPLING) $("assistant-" + k).value = a && a[k] !== undefined ? a[k] : "";
    for (const k of GROUNDING) $("assistant-" + k).checked = !!(a && a[k] === true);
    $("assistant-documents").hidden = !a;
    if (a) loadDocuments();
  }

  function closeEditor() {
    ctx.editing = null;
    $("assistant-form").hidden = true;
  }

  function formBody() {
    const body = {
      name: $("assistant-name").value.trim(), instructions: $("assistant-instructions").value,
      model: $("assistant-model").value, tools: TOOL_TYPES.filter((t) => $("tool-" + t).checked).map((type) => ({ type })),
    };
    const choice = $("assistant-tool-choice").value;
    body.tool_choice = choice === "auto" ? null : ["none", "required"].includes(choice) ? choice : { type: choice };
    for (const k of SAMPLING) {
      const v = $("assistant-" + k).value.trim();
      body[k] = v === "" ? null : Number(v);
    }
    for (const k of GROUNDING) body[k] = $("assistant-" + k).checked ? true : null;  // unchecked: the server's default
    return body;
  }

  async function save(ev) {
    ev.preventDefault();
    formError("");
    try {
      const body = formBody();
      const a = ctx.editing ? await ctx.api("POST", "/v1/assistants/" + ctx.editing.id, body)
                            : await ctx.api("POST", "/v1/assistants", body);
      await load();
      openEditor(a);  // stays open: documents can be added now
      $("assistant-saved").hidden = false;
    } catch (e) { formError(e.message); }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Documents
  // ---------------------------------------------------------------------------------------------------------
  async function loadDocuments() {
    const id = ctx.editing.id;
    const docs = (await ctx.api("GET", "/v1/assistants/" + id + "/documents")).data;
    if (!ctx.editing || ctx.editing.id !== id) return;
    const ul = $("document-list");
    ul.textContent = "";
    for (const d of docs) {
      const li = el("li");
      li.dataset.name = d.name;
      li.append(el("span", "document-name", d.name),
                el("span", "document-size", d.bytes + " bytes · " + d.chunks + (d.chunks === 1 ? " chunk" : " chunks")));
      const del = el("button", "document-delete", "✕");
      del.type = "button";
      del.title = "Remove";
      del.addEventListener("click", async () => {
        try {
          await ctx.api("DELETE", "/v1/assistants/" + id + "/documents/" + encodeURIComponent(d.name));
          await loadDocuments();
        } catch (e) { formError(e.message); }
      });
      li.append(del);
      ul.append(li);
    }
    $("document-list").dataset.count = String(docs.length);
  }

  async function addDocument(name, text) {
    await ctx.api("POST", "/v1/assistants/" + ctx.editing.id + "/documents", { name, text });
  }

  async function uploadFiles() {
    formError("");
    try {
      for (const f of $("document-file").files) await addDocument(f.name, await f.text());
      $("document-file").value = "";
      await loadDocuments();
    } catch (e) { formError(e.message); }
  }

  async function pasteDocument() {
    formError("");
    try {
      const name = $("document-name").value.trim() || "pasted.txt";
      await addDocument(name, $("document-text").value);
      $("document-name").value = "";
      $("document-text").value = "";
      await loadDocuments();
    } catch (e) { formError(e.message); }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Agent steps: tool cards and citations
  // ---------------------------------------------------------------------------------------------------------
  function pretty(s) {
    try { return JSON.stringify(typeof s === "string" ? JSON.parse(s) : s, null, 1); } catch (e) { return String(s); }
  }

  function passageElement(c, id) {
    const q = el("blockquote", "passage");
    q.id = id;
    q.append(el("div", "passage-doc", c.document + " @" + c.offset), el("div", "passage-text", c.text));
    return q;
  }

  // The steps of message `m` (m.tool_steps: {name, arguments, status, result, citations, seconds}); passages are
  // numbered over all steps in order, the order of the answer's citations.
  function toolCards(m, key) {
    const box = el("div", "tool-cards");
    let n = 0;
    (m.tool_steps || []).forEach((s) => {
      const card = el("details", "tool-card");
      card.dataset.status = s.status;
      card.dataset.tool = s.name;
      if (s.open) card.open = true;
      card.addEventListener("toggle", () => { s.open = card.open; });
      const summary = el("summary");
      const status = s.status === "running" ? "running…" : s.status === "error" ? "error" : "done";
      summary.append(el("span", "tool-name", s.name), el("span", "tool-status", status +
        (typeof s.seconds === "number" && s.status !== "running" ? " · " + (s.seconds * 1000).toFixed(0) + " ms" : "")));
      card.append(summary);
      const args = el("div", "tool-args");
      args.append(el("span", "tool-label", "arguments"), el("pre", "", pretty(s.arguments)));
      card.append(args);
      if (s.status !== "running") {
        const out = el("div", "tool-output");
        out.append(el("span", "tool-label", "output"));
        const r = s.result || {};
        if (s.name === "search_documents" && !s.tool_error && Array.isArray(r.passages)) {
          const q = el("div", "tool-query", "query: " + (r.query || ""));
          if (r.query_source === "fallback") q.append(el("span", "fallback", " (the model's query was empty or found nothing: the question was searched)"));
          out.append(q);
          if (!r.passages.length) out.append(el("div", "no-passages", "no passage found"));
          for (const c of s.citations || []) out.append(passageElement(c, "passage-" + key + "-" + n++));
        } else {
          out.append(el("pre", "", pretty(r)));
        }
        card.append(out);
      }
      box.append(card);
    });
    return box;
  }

  // The answer's sources: [n] document, linked to the passage in its tool card (which opens on click).
  function citationList(m, key) {
    const list = el("ol", "citations");
    (m.citations || []).forEach((c, i) => {
      const li = el("li");
      const a = el("a", "citation", "[" + (i + 1) + "] " + c.document);
      a.href = "#passage-" + key + "-" + i;
      a.title = c.text;
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        const p = document.getElementById("passage-" + key + "-" + i);
        if (!p) return;
        const card = p.closest("details");
        if (card) card.open = true;
        p.classList.add("highlight");
        p.scrollIntoView({ block: "nearest" });
      });
      li.append(a, el("span", "citation-snippet", " " + c.text.slice(0, 120) + (c.text.length > 120 ? "…" : "")));
      list.append(li);
    });
    return list;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------------------
  async function init(api, models, onChange) {
    ctx.api = api;
    ctx.models = models;
    ctx.onChange = onChange;
    await load();
  }

  function wire() {
    $("manage-assistants").addEventListener("click", () => { $("assistants-panel").hidden = !$("assistants-panel").hidden; });
    $("close-assistants").addEventListener("click", () => { $("assistants-panel").hidden = true; });
    $("new-assistant").addEventListener("click", () => openEditor(null));
    $("assistant-form").addEventListener("submit", save);
    $("assistant-form").addEventListener("input", () => { $("assistant-saved").hidden = true; });
    $("assistant-cancel").addEventListener("click", closeEditor);
    $("document-file").addEventListener("change", uploadFiles);
    $("document-add").addEventListener("click", pasteDocument);
  }
  wire();

  window.baleineAgent = { init, reload: load, assistants: () => ctx.assistants, toolCards, citationList };
})();
