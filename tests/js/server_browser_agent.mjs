// The web chat's assistants and tool cards in Debian's chromium driven by playwright-core: create an assistant with
// file_search (its first step forced to search, so the random tiny model cannot skip the tool), upload a document
// from a file, ask a question whose answer is in it, see the tool card with that passage and an answer citing it;
// reload and find the conversation still bound to the assistant with its cards; edit, paste a document, delete.
// Usage: node server_browser_agent.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import { harness, launchChromium, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(`${work}/profile`, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`);
const t = harness();
const context = await launchChromium(`${work}/profile`);
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(15000);
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(server.url)) external.push(r.url()); });
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
const api = async (path) => (await fetch(server.url + path)).json();

// One short document (one chunk): whatever query the model writes, a hit is this passage, and a query that finds
// nothing falls back to the question, which names it.
const answerSentence = "Marguerite Oduya invented the ablatograph in 1931 to measure how fast glacier ice melts.";
const documentText = `Field notes from the Rhone glacier station. ${answerSentence} The station keeps twelve stakes on the tongue.`;
const question = "Who invented the ablatograph?";
let assistantId = "";
let conversationId = "";

await t.check("create an assistant with file_search and a forced first search", async () => {
  await page.goto(server.url + "/");
  await page.waitForSelector("#model option", { state: "attached" });
  await page.click("#manage-assistants");
  await page.click("#new-assistant");
  await page.fill("#assistant-name", "Glacier notes");
  await page.fill("#assistant-instructions", "Answer from the documents and cite them.");
  await page.check("#tool-file_search");
  await page.selectOption("#assistant-tool-choice", "file_search");
  await page.fill("#assistant-temperature", "0");
  await page.fill("#assistant-max_tokens", "40");
  await page.fill("#assistant-presence_penalty", "0.5");
  await page.click("#assistant-save");
  await page.waitForSelector("#assistant-list li >> text=Glacier notes");
  await page.waitForSelector("#assistant-documents:not([hidden])");
  const list = (await api("/v1/assistants")).data;
  assert.equal(list.length, 1);
  assistantId = list[0].id;
  assert.deepEqual(list[0].tools, [{ type: "file_search" }]);
  assert.deepEqual(list[0].tool_choice, { type: "file_search" });
  assert.equal(list[0].temperature, 0);
  assert.equal(list[0].max_tokens, 40);
  assert.equal(list[0].presence_penalty, 0.5);
  assert.equal(list[0].top_p, undefined);
});

await t.check("a tool_choice the tools do not allow is refused with the server's message", async () => {
  await page.uncheck("#tool-file_search");
  await page.click("#assistant-save");
  await page.waitForSelector("#assistant-error:not([hidden])");
  assert.match(await page.textContent("#assistant-error"), /tool_choice.*not among the assistant's tools/);
  await page.check("#tool-file_search");
  await page.click("#assistant-save");
  await page.waitForSelector("#assistant-saved:not([hidden])");
  assert.equal(await page.isHidden("#assistant-error"), true);
});

await t.check("upload a document from a file: it is listed with its chunk count", async () => {
  await page.setInputFiles("#document-file", { name: "glacier.txt", mimeType: "text/plain", buffer: Buffer.from(documentText) });
  await page.waitForSelector("#document-list li[data-name='glacier.txt']");
  assert.match(await page.textContent("#document-list li[data-name='glacier.txt'] .document-size"),
               new RegExp(`^${Buffer.byteLength(documentText)} bytes · 1 chunk$`));
  const docs = (await api(`/v1/assistants/${assistantId}/documents`)).data;
  assert.deepEqual(docs.map((d) => [d.name, d.chunks]), [["glacier.txt", 1]]);
});

await t.check("a chat bound to the assistant shows the tool card with the passage and a cited answer", async () => {
  await page.click("#close-assistants");
  await page.click("#new-chat");
  await page.selectOption("#assistant", assistantId);
  // Cards seen in the answer while it streams (the steps arrive as SSE events), before the stored one replaces it.
  await page.evaluate(() => {
    window.__liveCards = [];
    new MutationObserver(() => {
      for (const c of document.querySelectorAll(".message.assistant.streaming .tool-card")) window.__liveCards.push(c.dataset.status);
    }).observe(document.querySelector("#messages"), { childList: true, subtree: true });
  });
  await page.fill("#input", question);
  await page.click("#send");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const live = await page.evaluate(() => window.__liveCards);
  assert.ok(live.includes("done"), "no card while the answer streamed: " + live.join(","));
  // A step still running (too short to catch above: the search takes a millisecond) is shown as such, open.
  assert.deepEqual(await page.evaluate(() => {
    const box = window.baleineAgent.toolCards({ tool_steps: [{ name: "calculator", arguments: '{"expression":"2+2"}', status: "running", open: true }] }, "t");
    const card = box.querySelector(".tool-card");
    return [card.dataset.status, card.open, card.querySelector(".tool-status").textContent, !!card.querySelector(".tool-output")];
  }), ["running", true, "running…", false]);
  const card = ".message.assistant .tool-card[data-tool='search_documents']";
  assert.equal(await page.getAttribute(card, "data-status"), "done");
  const args = JSON.parse(await page.textContent(`${card} .tool-args pre`));
  assert.equal(typeof args.query, "string");
  assert.equal(await page.textContent(`${card} .passage .passage-text`), documentText);
  assert.match(await page.textContent(`${card} .passage .passage-doc`), /^glacier\.txt @0$/);
  // The citation links to the passage: clicking it opens the collapsed card on it.
  const cite = ".message.assistant ol.citations a.citation";
  assert.equal(await page.textContent(cite), "[1] glacier.txt");
  const target = (await page.getAttribute(cite, "href")).slice(1);
  assert.equal(await page.$eval(card, (d) => d.open), false);
  await page.click(cite);
  assert.equal(await page.$eval(card, (d) => d.open), true);
  assert.equal(await page.$eval(`#${target}`, (p) => p.closest(".tool-card") !== null && p.textContent.includes("ablatograph")), true);
  assert.ok(await page.isVisible(`#${target}`));
  conversationId = (await page.evaluate(() => location.hash)).slice(1);
  const stored = await api(`/api/conversations/${conversationId}`);
  assert.equal(stored.assistant_id, assistantId);
  const last = stored.messages[stored.messages.length - 1];
  assert.equal(last.role, "assistant");
  assert.equal(last.tool_steps[0].name, "search_documents");
  assert.equal(last.citations[0].document, "glacier.txt");
  assert.ok(last.completion_tokens > 0);
});

await t.check("on the reasoner the forced search follows the reasoning, which stays visible", async () => {
  await page.selectOption("#model", "deepseek-reasoner");  // the assistant has no model: the conversation's applies
  await page.fill("#input", "And when was the ablatograph invented?");
  await page.click("#send");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const stored = await api(`/api/conversations/${conversationId}`);
  const last = stored.messages[stored.messages.length - 1];
  assert.equal(last.model, "deepseek-reasoner");
  assert.equal(last.tool_steps[0].name, "search_documents");
  // Thinking mode samples (temperature is ignored), and the tiny model sometimes thinks nothing but a stray tool
  // marker, which the parser drops: the reasoning may then be empty, but never holds a marker.
  assert.ok(!last.reasoning.includes("tool▁call"), last.reasoning);
  const answer = ".message.assistant:last-child";
  assert.equal(await page.getAttribute(`${answer} .tool-card`, "data-status"), "done");
  if (last.reasoning.length > 0) {
    await page.click(`${answer} details.thinking summary`);
    assert.equal(await page.textContent(`${answer} details.thinking .reasoning`), last.reasoning);
  }
  assert.equal(await page.textContent(`${answer} ol.citations a.citation`), "[1] glacier.txt");
});

await t.check("reload: the conversation is still bound to the assistant, cards and citations come back", async () => {
  await page.reload();
  await page.waitForSelector(".message.assistant .tool-card[data-status='done']");
  assert.equal(await page.inputValue("#assistant"), assistantId);
  assert.equal(await page.textContent(".message.assistant ol.citations a.citation"), "[1] glacier.txt");
  await page.click("#new-chat");
  await page.selectOption("#assistant", "");
  assert.equal(await page.textContent(`#conversations li a[href='#${conversationId}'] .badge`), "Glacier notes");
  await page.click(`#conversations li a[href='#${conversationId}']`);
  await page.waitForFunction((id) => document.querySelector("#assistant").value === id, assistantId);
});

await t.check("edit, paste a document into a second assistant, delete it", async () => {
  await page.click("#manage-assistants");
  await page.click("#new-assistant");
  await page.fill("#assistant-name", "Calc");
  await page.check("#tool-calculator");
  await page.check("#assistant-quote_search");
  await page.click("#assistant-save");
  await page.waitForSelector("#assistant-documents:not([hidden])");
  await page.fill("#document-name", "notes.md");
  await page.fill("#document-text", "x ".repeat(600));
  await page.click("#document-add");
  await page.waitForSelector("#document-list li[data-name='notes.md']");
  const calc = (await api("/v1/assistants")).data.find((a) => a.name === "Calc");
  const calcId = calc.id;
  assert.equal(calc.quote_search, true);      // the grounding boxes reach the assistant
  assert.equal(calc.grounded_quotes, null);   // unchecked: the server's default
  const chunks = (await api(`/v1/assistants/${calcId}/documents`)).data[0].chunks;
  assert.ok(chunks >= 2, "1200 bytes make several chunks of at most 700");
  assert.equal(await page.textContent("#document-list li[data-name='notes.md'] .document-size"), `1200 bytes · ${chunks} chunks`);
  await page.fill("#assistant-name", "Calculator");
  await page.click("#assistant-save");
  // The list and the picker show the new name.
  await page.waitForSelector("#assistant-list .assistant-name >> text='Calculator'");
  assert.ok((await page.$$eval("#assistant option", (os) => os.map((o) => o.textContent))).includes("Assistant: Calculator"));
  await page.click(`#assistant-list li[data-id='${calcId}'] .assistant-delete`);
  await page.waitForFunction(() => document.querySelectorAll("#assistant-list li").length === 1);
  // Edit fills the form from the stored assistant, documents included.
  await page.click(`#assistant-list li[data-id='${assistantId}'] .assistant-edit`);
  await page.waitForSelector("#document-list li[data-name='glacier.txt']");
  assert.equal(await page.inputValue("#assistant-name"), "Glacier notes");
  assert.equal(await page.isChecked("#tool-file_search"), true);
  assert.equal(await page.isChecked("#tool-calculator"), false);
  assert.equal(await page.inputValue("#assistant-tool-choice"), "file_search");
  assert.equal(await page.inputValue("#assistant-temperature"), "0");
  assert.equal(await page.inputValue("#assistant-presence_penalty"), "0.5");
  const names = (await api("/v1/assistants")).data.map((a) => a.name);
  assert.deepEqual(names, ["Glacier notes"]);
  assert.deepEqual(external, []);
  assert.deepEqual(pageErrors, []);
});

await t.check("the conversation API and /v1/responses validate the binding, the agent record and tool_choice (OpenAI-style errors)", async () => {
  const call = async (method, path, body) => {
    const r = await fetch(server.url + path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    return [r.status, await r.json()];
  };
  let [status, body] = await call("POST", "/api/conversations", { assistant_id: "asst_nope" });
  assert.equal(status, 404);
  assert.equal(body.error.param, "assistant_id");
  assert.equal(body.error.code, "not_found");
  [status, body] = await call("POST", "/api/conversations", { assistant_id: 7 });
  assert.equal(status, 400);
  assert.equal(body.error.type, "invalid_request_error");
  [status, body] = await call("PATCH", `/api/conversations/${conversationId}`, { assistant_id: null });
  assert.equal(status, 200);
  assert.equal(body.assistant_id, null);
  [status, body] = await call("PATCH", `/api/conversations/${conversationId}`, { assistant_id: assistantId });
  assert.equal(body.assistant_id, assistantId);
  // /v1/responses takes the same tool_choice shapes per request, checked against the tools it has.
  [status, body] = await call("POST", "/v1/responses", { assistant_id: assistantId, input: question, tool_choice: { type: "calculator" } });
  assert.equal(status, 400);
  assert.equal(body.error.param, "tool_choice");
  [status, body] = await call("POST", "/v1/responses", { assistant_id: assistantId, input: question, tool_choice: "none" });
  assert.equal(status, 200);
  assert.ok(!body.output.some((o) => o.type === "function_call"), "tool_choice none still called a tool");
  for (const bad of [{ tool_steps: "x" }, { tool_steps: [1] }, { citations: {} }, { status: "streaming" }, { prompt_tokens: -1 }]) {
    [status, body] = await call("POST", `/api/conversations/${conversationId}/messages`, { role: "assistant", content: "a", ...bad });
    assert.equal(status, 400, JSON.stringify(bad));
    assert.equal(body.error.param, Object.keys(bad)[0]);
  }
});

await context.close();
await stopServer(server);
t.done();
