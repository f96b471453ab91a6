// /v1/responses with client-executed function tools and MCP servers, through the official `openai` SDK, against
// `baleine serve` on the tiny fixture model; the MCP server is a real one built with @modelcontextprotocol/sdk
// (mcp_test_server.mjs), configured with --mcp-config. Calls are forced with tool_choice (the tiny model would
// rarely choose a tool); the constrained decoder makes the forced arguments valid JSON for the schema. Also:
// assistants owned per API key (404 for other keys), and hybrid (BM25 + the model's embeddings) file_search.
// Usage: node server_responses_tools.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const here = path.dirname(fileURLToPath(import.meta.url));
const mcpConfig = `${work}/mcp.json`;
fs.writeFileSync(mcpConfig, JSON.stringify({ mcpServers: { test: { command: "node", args: [path.join(here, "mcp_test_server.mjs")], timeout_ms: 5000 } } }));
const db = `${work}/server.db`;
const keys = (...args) => execFileSync(bin, ["keys", "--db", db, ...args], { encoding: "utf8" }).trim();
const alice = keys("create", "alice"), bob = keys("create", "bob");
const server = await startServer(bin, model, db, ["--mcp-config", mcpConfig]);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: alice, maxRetries: 0 });
const other = new OpenAI({ baseURL: server.url + "/v1", apiKey: bob, maxRetries: 0 });
const t = harness();
const weather = { type: "function", name: "get_weather", description: "Current weather in a city",
                  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }, strict: true };
const post = (p, body, key = alice) => fetch(server.url + p, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${key}` }, body: JSON.stringify(body) });

let first, call;
await t.check("function tool: the call comes back as a function_call item and the response ends", async () => {
  first = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "What is the weather in Brest?", tools: [weather],
                                          tool_choice: { type: "function", name: "get_weather" }, max_output_tokens: 60 });
  assert.equal(first.status, "completed");
  const calls = first.output.filter((o) => o.type === "function_call");
  assert.equal(calls.length, 1, JSON.stringify(first.output));
  call = calls[0];
  assert.equal(call.name, "get_weather");
  assert.match(call.call_id, /^call_/);
  const args = JSON.parse(call.arguments);
  assert.equal(typeof args.city, "string");
  assert.deepEqual(Object.keys(args), ["city"]);
  assert.ok(!first.output.some((o) => o.type === "function_call_output"), "the server did not run the client's function");
});

await t.check("function_call_output with previous_response_id continues the conversation", async () => {
  const second = await client.responses.create({ model: "deepseek-chat", temperature: 0, previous_response_id: first.id, tools: [weather],
                                                 tool_choice: "none", max_output_tokens: 8,
                                                 input: [{ type: "function_call_output", call_id: call.call_id, output: JSON.stringify({ temperature_c: 14 }) }] });
  assert.equal(second.status, "completed");
  assert.equal(second.previous_response_id, first.id);
  assert.equal(second.output.at(-1).type, "message");
  // The client may also echo the call item (the SDK's usual pattern of appending the output to the items).
  const third = await client.responses.create({ model: "deepseek-chat", temperature: 0, previous_response_id: first.id, tools: [weather], tool_choice: "none",
                                                max_output_tokens: 8, input: [call, { type: "function_call_output", call_id: call.call_id, output: "14 C" }] });
  assert.equal(third.status, "completed");
  // The output is in the prompt: a longer one costs more input tokens.
  const long = await client.responses.create({ model: "deepseek-chat", temperature: 0, previous_response_id: first.id, tools: [weather], tool_choice: "none",
                                               max_output_tokens: 8, input: [{ type: "function_call_output", call_id: call.call_id, output: "fourteen degrees ".repeat(20) }] });
  assert.ok(long.usage.input_tokens > third.usage.input_tokens + 20, `${long.usage.input_tokens} vs ${third.usage.input_tokens}`);
  // Stateless: the whole history as items, no previous_response_id.
  const fourth = await client.responses.create({ model: "deepseek-chat", temperature: 0, tools: [weather], tool_choice: "none", max_output_tokens: 8,
                                                 input: [{ role: "user", content: "Weather in Brest?" }, call, { type: "function_call_output", call_id: call.call_id, output: "14 C" }] });
  assert.equal(fourth.status, "completed");
});

await t.check("function calls: a missing or foreign output is a 400", async () => {
  await assert.rejects(client.responses.create({ model: "deepseek-chat", previous_response_id: first.id, tools: [weather], input: "no output given" }),
                       (e) => e.status === 400 && /function_call_output/.test(e.message));
  await assert.rejects(client.responses.create({ model: "deepseek-chat", previous_response_id: first.id, tools: [weather],
                                                 input: [{ type: "function_call_output", call_id: "call_other", output: "x" }] }),
                       (e) => e.status === 400);
  await assert.rejects(client.responses.create({ model: "deepseek-chat", input: "x", tools: [{ type: "function", name: "bad name!" }] }), (e) => e.status === 400);
});

await t.check("MCP: tools listed (mcp_list_tools), the forced call runs on the real server (mcp_call)", async () => {
  const r = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "Add two numbers.", max_output_tokens: 60, max_steps: 2,
                                            tools: [{ type: "mcp", server_label: "test", require_approval: "never" }],
                                            tool_choice: { type: "mcp", server_label: "test", name: "add" } });
  const list = r.output.find((o) => o.type === "mcp_list_tools");
  assert.ok(list, JSON.stringify(r.output));
  assert.equal(list.server_label, "test");
  assert.deepEqual(list.tools.map((x) => x.name).sort(), ["add", "fail", "shout", "slow"]);
  const mc = r.output.find((o) => o.type === "mcp_call");
  assert.ok(mc, JSON.stringify(r.output));
  assert.equal(mc.server_label, "test");
  assert.equal(mc.name, "add");
  const { a, b } = JSON.parse(mc.arguments);
  assert.equal(Number(mc.output), a + b, JSON.stringify(mc));   // computed by the MCP server
  assert.equal(mc.error, null);
  assert.equal(r.output.at(-1).type, "message");
});

await t.check("MCP from /v1/chat/completions: the server runs the forced call and answers one chat completion", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", temperature: 0, max_tokens: 60, max_steps: 2,
                                                   messages: [{ role: "user", content: "Add two numbers." }],
                                                   tools: [{ type: "mcp", server_label: "test" }],
                                                   tool_choice: { type: "mcp", server_label: "test", name: "add" } });
  assert.equal(r.object, "chat.completion");
  const m = r.choices[0].message;
  assert.ok(Array.isArray(m.mcp_calls) && m.mcp_calls.length >= 1, JSON.stringify(m));
  const mc = m.mcp_calls[0];
  assert.equal(mc.server_label, "test");
  assert.equal(mc.name, "add");
  const { a, b } = JSON.parse(mc.arguments);
  assert.equal(Number(mc.output), a + b, JSON.stringify(mc));  // computed by the MCP server
  assert.equal(typeof m.content, "string");
  assert.ok(!m.tool_calls, "no client call was made");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
  assert.ok(r.usage.prompt_tokens > 0);
});

await t.check("chat completions with an MCP server and a client function: stops at the client call as tool_calls", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", temperature: 0, max_tokens: 60,
    messages: [{ role: "user", content: "What is the weather in Brest?" }],
    tools: [{ type: "mcp", server_label: "test" }, weather],
    tool_choice: { type: "function", function: { name: "get_weather" } } });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.equal(r.choices[0].message.tool_calls[0].function.name, "get_weather");
  JSON.parse(r.choices[0].message.tool_calls[0].function.arguments);
  // The built-in calculator through chat completions, and what is refused.
  const c = await client.chat.completions.create({ model: "deepseek-chat", temperature: 0, max_tokens: 60, max_steps: 2,
    messages: [{ role: "user", content: "2+3?" }], tools: [{ type: "calculator" }], tool_choice: { type: "calculator" } });
  assert.ok(c.choices[0].message.server_tool_calls.length >= 1, JSON.stringify(c.choices[0].message));
  // Streamed: the loop runs, then the answer arrives as chunks the SDK assembles (calls made, then the finish).
  const stream = await client.chat.completions.create({ model: "deepseek-chat", temperature: 0, max_tokens: 60, max_steps: 2,
    messages: [{ role: "user", content: "Add two numbers." }], tools: [{ type: "mcp", server_label: "test" }],
    tool_choice: { type: "mcp", server_label: "test", name: "add" }, stream: true, stream_options: { include_usage: true } });
  let content = "", mcp = null, finish = null, usage = null;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    const d = ch.choices[0]?.delta;
    if (d?.content) content += d.content;
    if (d?.mcp_calls) mcp = d.mcp_calls;
    if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
  }
  assert.ok(mcp && mcp[0].name === "add" && Number(mcp[0].output) === Object.values(JSON.parse(mcp[0].arguments)).reduce((x, y) => x + y, 0), JSON.stringify(mcp));
  assert.ok(["stop", "length"].includes(finish), String(finish));
  assert.ok(usage && usage.prompt_tokens > 0);
  assert.equal(typeof content, "string");
  await assert.rejects(client.chat.completions.create({ model: "deepseek-chat", messages: [{ role: "user", content: "x" }],
    tools: [{ type: "mcp", server_label: "nope" }] }), (e) => e.status === 400);
});

await t.check("MCP: allowed_tools, streamed steps, and a failing tool reported as an error", async () => {
  const res = await post("/v1/responses", { model: "deepseek-chat", temperature: 0, input: "Fail.", max_output_tokens: 40, max_steps: 2, stream: true,
                                            tools: [{ type: "mcp", server_label: "test", allowed_tools: ["fail"] }], tool_choice: "required" });
  assert.equal(res.status, 200);
  const events = (await res.text()).split("\n\n").filter((x) => x.startsWith("event: ")).map((x) => JSON.parse(x.split("\ndata: ")[1]));
  const result = events.find((e) => e.type === "agent.tool_result");
  assert.ok(result && result.call.name === "test__fail", JSON.stringify(events.map((e) => e.type)));
  assert.equal(result.tool_error, true);
  const done = events.find((e) => e.type === "response.completed").response;
  assert.deepEqual(done.output.find((o) => o.type === "mcp_list_tools").tools.map((x) => x.name), ["fail"]);
  assert.ok(done.output.find((o) => o.type === "mcp_call").error);
});

await t.check("MCP: only configured servers, never commands or URLs from a request", async () => {
  await assert.rejects(client.responses.create({ model: "deepseek-chat", input: "x", tools: [{ type: "mcp", server_label: "nope" }] }), (e) => e.status === 400);
  await assert.rejects(client.responses.create({ model: "deepseek-chat", input: "x", tools: [{ type: "mcp", server_label: "x", server_url: "https://example.com/mcp" }] }),
                       (e) => e.status === 400);
  let r = await post("/v1/assistants", { model: "deepseek-chat", mcp_servers: [{ server_label: "test", command: ["sh", "-c", "id"] }] });
  assert.equal(r.status, 400);
  r = await post("/v1/assistants", { model: "deepseek-chat", mcp_servers: [{ server_label: "unknown" }] });
  assert.equal(r.status, 400);
});

await t.check("MCP through an assistant's mcp_servers", async () => {
  const a = await (await post("/v1/assistants", { model: "deepseek-chat", name: "mcp", mcp_servers: [{ server_label: "test", allowed_tools: ["shout"] }] })).json();
  assert.match(a.id, /^asst_/, JSON.stringify(a));
  const r = await client.responses.create({ model: "deepseek-chat", temperature: 0, input: "Shout hello.", max_output_tokens: 60, max_steps: 2,
                                            assistant_id: a.id, tool_choice: "required" });
  const mc = r.output.find((o) => o.type === "mcp_call");
  assert.ok(mc && mc.name === "shout", JSON.stringify(r.output));
  assert.equal(mc.output, JSON.parse(mc.arguments).text.toUpperCase());
});

await t.check("assistants are owned per API key: another key gets 404 and does not list them", async () => {
  const a = await client.beta.assistants.create({ model: "deepseek-chat", name: "Alice's" });
  assert.equal((await client.beta.assistants.retrieve(a.id)).name, "Alice's");
  await assert.rejects(other.beta.assistants.retrieve(a.id), (e) => e.status === 404);
  await assert.rejects(other.beta.assistants.update(a.id, { name: "stolen" }), (e) => e.status === 404);
  await assert.rejects(other.beta.assistants.del(a.id), (e) => e.status === 404);
  assert.ok(!(await other.beta.assistants.list()).data.some((x) => x.id === a.id));
  assert.ok((await client.beta.assistants.list()).data.some((x) => x.id === a.id));
  let r = await post(`/v1/assistants/${a.id}/documents`, { name: "d.txt", text: "secret" }, bob);
  assert.equal(r.status, 404);
  r = await fetch(server.url + `/v1/assistants/${a.id}/documents`, { headers: { authorization: `Bearer ${bob}` } });
  assert.equal(r.status, 404);
  await assert.rejects(other.responses.create({ model: "deepseek-chat", input: "x", assistant_id: a.id }), (e) => e.status === 404);
  // Response chains too: bob cannot continue alice's response.
  await assert.rejects(other.responses.create({ model: "deepseek-chat", input: "x", previous_response_id: first.id }), (e) => e.status === 400);
  assert.equal((await client.beta.assistants.retrieve(a.id)).name, "Alice's");
});

await t.check("hybrid file_search: chunks embedded at upload by the engine, dense hits even without shared words", async () => {
  const metric = async () => Number(((await (await fetch(server.url + "/metrics", { headers: { authorization: `Bearer ${alice}` } })).text()).match(/^baleine_embedding_inputs_total (\d+)/m) || [0, -1])[1]);
  const a = await client.beta.assistants.create({ model: "deepseek-chat", name: "hybrid", tools: [{ type: "file_search", ranking_options: { ranker: "hybrid" } }] });
  const before = await metric();
  assert.ok(before >= 0, "the metric exists");
  const r = await post(`/v1/assistants/${a.id}/documents`, { name: "facts.txt", text: "The lighthouse of Ouessant was lit in 1863. It is 55 metres tall." });
  assert.equal(r.status, 200);
  assert.ok(await metric() > before, "the upload was embedded");
  const res = await post("/v1/responses", { model: "deepseek-chat", temperature: 0, input: "Tell me.", max_output_tokens: 60, max_steps: 2, stream: true,
                                            assistant_id: a.id, tool_choice: "required" });
  const events = (await res.text()).split("\n\n").filter((x) => x.startsWith("event: ")).map((x) => JSON.parse(x.split("\ndata: ")[1]));
  const result = events.find((e) => e.type === "agent.tool_result");
  assert.ok(result && result.call.name === "search_documents", JSON.stringify(events.map((e) => e.type)));
  // Whatever words the tiny model searched for, the dense half of the fusion ranks the one passage.
  assert.equal(result.citations.length, 1, JSON.stringify(result));
  assert.equal(result.citations[0].document, "facts.txt");
});

await t.check("hostile tool definitions on /v1/responses, /v1/assistants and /v1/chat/completions -> 400", async () => {
  const flat = (name, parameters, extra = {}) => ({ type: "function", name, parameters, ...extra });
  const nested = (name, parameters, extra = {}) => ({ type: "function", function: { name, parameters, ...extra } });
  let deep = { type: "string" };
  for (let i = 0; i < 40; i++) deep = { type: "object", properties: { d: deep } };
  // A reference bomb: each level refers to the previous twice (2^20 nodes when expanded).
  const defs = { l0: { type: "string" } };
  for (let i = 1; i <= 20; i++) defs["l" + i] = { type: "object", properties: { a: { $ref: `#/$defs/l${i - 1}` }, b: { $ref: `#/$defs/l${i - 1}` } } };
  const cases = [
    ["invalid schema", { type: "object", properties: { a: { type: 7 } } }, {}, 1],
    ["200 tools", { type: "object" }, {}, 200],
    ["huge description", { type: "object" }, { description: "d".repeat(100000) }, 1],
    ["recursive $ref", { $ref: "#/$defs/n", $defs: { n: { type: "object", properties: { next: { $ref: "#/$defs/n" } } } } }, {}, 1],
    ["reference bomb", { $ref: "#/$defs/l20", $defs: defs }, {}, 1],
    ["nesting deeper than 32", deep, {}, 1],
    ["100 properties", { type: "object", properties: Object.fromEntries(Array.from({ length: 100 }, (_, i) => ["p" + i, { type: "string" }])) }, {}, 1],
    ["parameters not an object schema", "nonsense", {}, 1],
  ];
  for (const [what, params, extra, n] of cases) {
    const tools = (make) => Array.from({ length: n }, (_, i) => make(n > 1 ? "t" + i : "x", params, extra));
    for (const [p, body, shape] of [["/v1/responses", { model: "deepseek-chat", input: "x" }, flat],
                                    ["/v1/assistants", { model: "deepseek-chat" }, nested],
                                    ["/v1/chat/completions", { model: "deepseek-chat", messages: [{ role: "user", content: "x" }], max_tokens: 4 }, nested]]) {
      const r = await post(p, { ...body, tools: tools(shape) });
      const j = await r.json();
      assert.equal(r.status, 400, `${what} on ${p}: ${r.status} ${JSON.stringify(j).slice(0, 200)}`);
      assert.equal(typeof j.error.message, "string");
    }
  }
  const ok = await client.responses.create({ model: "deepseek-chat", input: "still alive?", max_output_tokens: 4 });
  assert.equal(ok.status, "completed");
});

await stopServer(server);
t.done();
