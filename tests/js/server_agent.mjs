// Assistants and the Responses API through the official `openai` SDK (and fetch for the agent's SSE steps)
// against `baleine serve` on the tiny fixture model: CRUD, document upload, built-in tools run by the server's
// agent loop (forced with tool_choice "required" since the tiny model would rarely choose a tool), every step
// streamed, previous_response_id chains kept server-side.
// Usage: node server_agent.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const t = harness();
let asst;

await t.check("assistants: create, retrieve, update, list (SDK beta.assistants)", async () => {
  asst = await client.beta.assistants.create({ model: "deepseek-chat", name: "Librarian", instructions: "Answer from the documents.",
                                               tools: [{ type: "file_search" }, { type: "calculator" }] });
  assert.match(asst.id, /^asst_/);
  assert.equal(asst.object, "assistant");
  const got = await client.beta.assistants.retrieve(asst.id);
  assert.equal(got.name, "Librarian");
  const upd = await client.beta.assistants.update(asst.id, { name: "Archivist" });
  assert.equal(upd.name, "Archivist");
  assert.equal(upd.instructions, "Answer from the documents.");
  const list = await client.beta.assistants.list();
  assert.ok(list.data.some((a) => a.id === asst.id));
});

await t.check("assistants: hostile bodies and unknown ids are OpenAI errors", async () => {
  await assert.rejects(client.beta.assistants.retrieve("asst_nope"), (e) => e.status === 404);
  await assert.rejects(client.beta.assistants.create({ model: "deepseek-chat", tools: [{ type: "shell" }] }), (e) => e.status === 400);
  await assert.rejects(client.beta.assistants.create({ model: "deepseek-chat", tools: [{ type: "function", function: { name: "x", parameters: { type: 5 } } }] }),
                       (e) => e.status === 400);
});

await t.check("documents: upload, list, delete", async () => {
  const post = (path, body) => fetch(server.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  let r = await post(`/v1/assistants/${asst.id}/documents`, { name: "facts.txt", text: "The lighthouse of Ouessant was lit in 1863. It is 55 metres tall." });
  assert.equal(r.status, 200, await r.text());
  r = await post(`/v1/assistants/${asst.id}/documents`, { name: "other.txt", text: "Unrelated text about gardens." });
  assert.equal(r.status, 200);
  let list = await (await fetch(server.url + `/v1/assistants/${asst.id}/documents`)).json();
  assert.deepEqual(list.data.map((d) => d.name).sort(), ["facts.txt", "other.txt"]);
  r = await fetch(server.url + `/v1/assistants/${asst.id}/documents/other.txt`, { method: "DELETE" });
  assert.equal(r.status, 200);
  list = await (await fetch(server.url + `/v1/assistants/${asst.id}/documents`)).json();
  assert.deepEqual(list.data.map((d) => d.name), ["facts.txt"]);
  r = await post(`/v1/assistants/asst_nope/documents`, { name: "a", text: "b" });
  assert.equal(r.status, 404);
});

let first;
await t.check("responses.create (SDK): plain answer, stored, then continued with previous_response_id", async () => {
  first = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "Hello there.", max_output_tokens: 8 });
  assert.match(first.id, /^resp_/);
  assert.equal(first.object, "response");
  assert.equal(first.status, "completed");
  assert.equal(typeof first.output_text, "string");
  const second = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "And again?", previous_response_id: first.id, max_output_tokens: 8 });
  assert.equal(second.previous_response_id, first.id);
  assert.ok(second.usage.input_tokens > first.usage.input_tokens, "the earlier turn is in the prompt");
  await assert.rejects(client.responses.create({ model: "deepseek-chat", temperature: 0, input: "x", previous_response_id: "resp_nope" }), (e) => e.status === 400);
});

await t.check("responses with an assistant: the server runs search_documents and reports the call and its output", async () => {
  const r = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "When was the lighthouse lit?", max_output_tokens: 120,
                                            assistant_id: asst.id, tool_choice: { type: "function", function: { name: "search_documents" } },
                                            max_steps: 2 });
  const call = r.output.find((o) => o.type === "function_call");
  const out = r.output.find((o) => o.type === "function_call_output");
  assert.ok(call && out, JSON.stringify(r.output));
  assert.equal(call.name, "search_documents");
  assert.equal(out.call_id, call.call_id);
  assert.equal(r.output.at(-1).type, "message");
  assert.ok(r.agent_steps >= 2);
});

await t.check("streamed agent steps: tool_call, tool_result, final, response.completed (SSE)", async () => {
  const res = await fetch(server.url + "/v1/responses", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "deepseek-chat", temperature: 0, input: "Compute something.", tools: [{ type: "calculator" }], tool_choice: "required",
                           max_output_tokens: 80, max_steps: 2, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /text\/event-stream/);
  const text = await res.text();
  const events = text.split("\n\n").filter((b) => b.startsWith("event: ")).map((b) => JSON.parse(b.split("\ndata: ")[1]));
  const types = events.map((e) => e.type);
  assert.equal(types[0], "response.created");
  assert.ok(types.includes("agent.tool_call"), types.join(","));
  const result = events.find((e) => e.type === "agent.tool_result");
  assert.ok(result && result.call.name === "calculator", JSON.stringify(result));
  assert.ok(types.includes("agent.final"), types.join(","));
  const done = events.at(-1);
  assert.equal(done.type, "response.completed");
  assert.match(done.response.id, /^resp_/);
  assert.ok(text.trimEnd().endsWith("data: [DONE]"));
});

await t.check("responses with grounded_quotes (and quote_search): every quoted span of the answer copies the question or the passages", async () => {
  for (const [seed, quote_search] of [[1, false], [2, false], [3, false], [1, true], [2, true]]) {
    const r = await client.responses.create({ model: "deepseek-chat", temperature: 1.2, seed, input: "When was the lighthouse lit?",
                                              max_output_tokens: 60, assistant_id: asst.id, max_steps: 2, grounded_quotes: true, quote_search,
                                              tool_choice: { type: "function", function: { name: "search_documents" } } });
    const out = r.output.find((o) => o.type === "function_call_output");
    assert.ok(out, JSON.stringify(r.output));
    const sources = [JSON.parse(out.output), "When was the lighthouse lit?"].flatMap(function strings(v) {
      return typeof v === "string" ? [v, v.toLowerCase()] : v && typeof v === "object" ? Object.values(v).flatMap(strings) : [];
    });
    // Quotes end at special tokens (markers the tiny model may write): split there first.
    for (const piece of r.output_text.split(/<｜[^｜]*｜>|<\/?think>/)) {
      const spans = piece.split('"').filter((_, i) => i % 2 === 1);
      for (const s of spans) assert.ok(sources.some((src) => src.includes(s)), `"${s}" is not in the sources`);
    }
  }
  await assert.rejects(client.responses.create({ model: "deepseek-chat", input: "x", grounded_quotes: "yes" }), (e) => e.status === 400);
  await assert.rejects(client.responses.create({ model: "deepseek-chat", input: "x", quote_search: 1 }), (e) => e.status === 400);
});

await t.check("assistants keep grounding settings (grounded_quotes, quote_search) and their loop uses them", async () => {
  const g = await client.beta.assistants.create({ model: "deepseek-chat", name: "Grounded", tools: [{ type: "file_search" }],
                                                  grounded_quotes: true, quote_search: true });
  assert.equal(g.grounded_quotes, true);
  assert.equal(g.quote_search, true);
  const got = await client.beta.assistants.retrieve(g.id);
  assert.equal(got.quote_search, true);
  const off = await client.beta.assistants.update(g.id, { quote_search: null });
  assert.equal(off.quote_search, null);  // back to the server's default
  assert.equal(off.grounded_quotes, true);
  await client.beta.assistants.update(g.id, { quote_search: true });
  const r = await fetch(server.url + `/v1/assistants/${g.id}/documents`, { method: "POST", headers: { "content-type": "application/json" },
                                                                          body: JSON.stringify({ name: "facts.txt", text: "The lighthouse of Ouessant was lit in 1863." }) });
  assert.equal(r.status, 200);
  const resp = await client.responses.create({ model: "deepseek-chat", temperature: 1.2, seed: 4, input: "When was the lighthouse lit?",
                                               max_output_tokens: 40, assistant_id: g.id, max_steps: 2,
                                               tool_choice: { type: "function", function: { name: "search_documents" } } });
  assert.equal(resp.status, "completed");
  await assert.rejects(client.beta.assistants.create({ model: "deepseek-chat", quote_search: "yes" }), (e) => e.status === 400);
  await client.beta.assistants.del(g.id);
});

await t.check("responses: unsupported tools and bad input are 400", async () => {
  await assert.rejects(client.responses.create({ model: "deepseek-chat", temperature: 0, input: "x", tools: [{ type: "shell" }] }), (e) => e.status === 400);
  await assert.rejects(client.responses.create({ model: "deepseek-chat", temperature: 0, input: 42 }), (e) => e.status === 400);
});

await t.check("assistants: delete", async () => {
  const d = await client.beta.assistants.del(asst.id);
  assert.equal(d.deleted, true);
  await assert.rejects(client.beta.assistants.retrieve(asst.id), (e) => e.status === 404);
});

await stopServer(server);
t.done();
