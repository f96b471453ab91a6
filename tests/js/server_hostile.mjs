// Malformed and hostile requests: each must get a 4xx with an OpenAI-style JSON error, and the server must keep
// serving (GET /health after every one, a real generation at the end).
// Usage: node server_hostile.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--max-body-bytes", "1000000"]);
const t = harness();
const msgs = [{ role: "user", content: "hello" }];
const chat = (extra) => JSON.stringify({ model: "model", messages: msgs, ...extra });
const deep = (n) => "[".repeat(n) + "]".repeat(n);

const cases = [
  ["empty body", "/v1/chat/completions", ""],
  ["{}", "/v1/chat/completions", "{}"],
  ["JSON array body", "/v1/chat/completions", "[]"],
  ["JSON string body", "/v1/chat/completions", '"hi"'],
  ["truncated JSON", "/v1/chat/completions", '{"model": "model", "messages": ['],
  ["not JSON at all", "/v1/chat/completions", "model=model&messages=hello"],
  ["trailing garbage", "/v1/chat/completions", chat({}) + "xyz"],
  ["missing messages", "/v1/chat/completions", '{"model": "model"}'],
  ["missing model", "/v1/chat/completions", JSON.stringify({ messages: msgs })],
  ["model is a number", "/v1/chat/completions", JSON.stringify({ model: 7, messages: msgs })],
  ["unknown model", "/v1/chat/completions", JSON.stringify({ model: "gpt-5", messages: msgs })],
  ["messages is a string", "/v1/chat/completions", JSON.stringify({ model: "model", messages: "hello" })],
  ["empty messages", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [] })],
  ["message is a number", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [5] })],
  ["unknown role", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "wizard", content: "x" }] })],
  ["content is an object", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: { a: 1 } }] })],
  ["image content part", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] })],
  ["input_image content part", "/v1/chat/completions", JSON.stringify({ model: "deepseek-flash", messages: [{ role: "user", content: [{ type: "text", text: "a" }, { type: "input_image", image_url: "x" }] }] })],
  ["thinking is a boolean", "/v1/chat/completions", chat({ thinking: true })],
  ["thinking type unknown", "/v1/chat/completions", chat({ thinking: { type: "auto" } })],
  ["thinking with an unknown field", "/v1/chat/completions", chat({ thinking: { type: "enabled", depth: 9 } })],
  ["reasoning_effort unknown", "/v1/chat/completions", chat({ reasoning_effort: "insane" })],
  ["reasoning_effort a number", "/v1/chat/completions", chat({ reasoning_effort: 3 })],
  ["reasoning_content a number", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [...msgs, { role: "assistant", content: "y", reasoning_content: 7 }, ...msgs] })],
  ["reasoning_content on a user message", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: "x", reasoning_content: "r" }] })],
  ["tool turn of deepseek-reasoner without reasoning_content", "/v1/chat/completions", JSON.stringify({ model: "deepseek-reasoner", messages: [...msgs,
    { role: "assistant", content: null, tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] }, { role: "tool", tool_call_id: "c", content: "1" }] })],
  ["logit_bias id outside the vocabulary", "/v1/chat/completions", chat({ logit_bias: { 99999999: 1 } })],
  ["logit_bias value over 100", "/v1/chat/completions", chat({ logit_bias: { 5: 1000 } })],
  ["logit_bias not an object", "/v1/chat/completions", chat({ logit_bias: [5] })],
  ["logit_bias key not a number", "/v1/chat/completions", chat({ logit_bias: { the: -100 } })],
  ["responses reasoning effort unknown", "/v1/responses", JSON.stringify({ model: "model", input: "x", reasoning: { effort: "lots" } })],
  ["responses reasoning not an object", "/v1/responses", JSON.stringify({ model: "model", input: "x", reasoning: "high" })],
  ["negative max_tokens", "/v1/chat/completions", chat({ max_tokens: -5 })],
  ["zero max_tokens", "/v1/chat/completions", chat({ max_tokens: 0 })],
  ["fractional max_tokens", "/v1/chat/completions", chat({ max_tokens: 2.5 })],
  ["huge max_tokens", "/v1/chat/completions", chat({ max_tokens: 1e30 })],
  ["max_tokens over the context", "/v1/chat/completions", chat({ max_tokens: 100000 })],
  ["max_tokens as a string", "/v1/chat/completions", chat({ max_tokens: "10" })],
  ["temperature too high", "/v1/chat/completions", chat({ temperature: 50 })],
  ["temperature as a string", "/v1/chat/completions", chat({ temperature: "warm" })],
  ["top_p negative", "/v1/chat/completions", chat({ top_p: -1 })],
  ["presence_penalty out of range", "/v1/chat/completions", chat({ presence_penalty: 9 })],
  ["n too large", "/v1/chat/completions", chat({ n: 1000 })],
  ["stream not a boolean", "/v1/chat/completions", chat({ stream: "yes" })],
  ["stop holds a number", "/v1/chat/completions", chat({ stop: [1] })],
  ["stop is an empty string", "/v1/chat/completions", chat({ stop: "" })],
  ["too many stop strings", "/v1/chat/completions", chat({ stop: "abcdefghijklmnopq".split("") })],
  ["top_logprobs without logprobs", "/v1/chat/completions", chat({ top_logprobs: 5 })],
  ["top_logprobs out of range", "/v1/chat/completions", chat({ logprobs: true, top_logprobs: 99 })],
  ["unknown response_format", "/v1/chat/completions", chat({ response_format: { type: "yaml" } })],
  ["seed as a string", "/v1/chat/completions", chat({ seed: "abc" })],
  ["tools not an array", "/v1/chat/completions", chat({ tools: "all" })],
  ["prefix on a user message", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: "x", prefix: true }] })],
  ["prefix as a string", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: "x" }, { role: "assistant", content: "y", prefix: "yes" }] })],
  ["prompt over the context", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: "the License ".repeat(2000) }] })],
  ["huge string over the size cap", "/v1/chat/completions", JSON.stringify({ model: "model", messages: [{ role: "user", content: "x".repeat(2_000_000) }] })],
  ["deeply nested JSON", "/v1/chat/completions", `{"model": "model", "messages": ${deep(100000)}}`],
  ["invalid UTF-8", "/v1/chat/completions", Buffer.concat([Buffer.from('{"model":"model","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}]}')])],
  ["lone surrogate escape", "/v1/chat/completions", '{"model":"model","messages":[{"role":"user","content":"\\ud800"}]}'],
  ["NaN literal", "/v1/chat/completions", '{"model":"model","messages":[{"role":"user","content":"x"}],"temperature":NaN}'],
  ["completions without prompt", "/v1/completions", '{"model": "model"}'],
  ["completions with an object prompt", "/v1/completions", JSON.stringify({ model: "model", prompt: { a: 1 } })],
  ["completions with mixed prompt", "/v1/completions", JSON.stringify({ model: "model", prompt: [1, "a"] })],
  ["completions token id out of the vocabulary", "/v1/completions", JSON.stringify({ model: "model", prompt: [1, 2, 99999999] })],
  ["completions negative token id", "/v1/completions", JSON.stringify({ model: "model", prompt: [-3] })],
  ["completions max_tokens 0 without echo", "/v1/completions", JSON.stringify({ model: "model", prompt: "x", max_tokens: 0 })],
  ["completions logprobs over 20", "/v1/completions", JSON.stringify({ model: "model", prompt: "x", logprobs: 50 })],
  ["tokenize without a prompt", "/tokenize", "{}"],
  ["detokenize an id out of the vocabulary", "/detokenize", JSON.stringify({ tokens: [1, 1e9] })],
  ["unknown endpoint", "/v1/engines/davinci/completions", "{}"],
  ["conversation that does not exist", "/api/conversations/nope", null],
];

const health = async () => {
  const r = await fetch(server.url + "/health");
  assert.equal(r.status, 200);
};

for (const [name, path, body] of cases) {
  await t.check(name, async () => {
    const r = await fetch(server.url + path, body === null ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const text = await r.text();
    assert.ok(r.status >= 400 && r.status < 500, `status ${r.status}: ${text.slice(0, 200)}`);
    const j = JSON.parse(text);
    assert.equal(typeof j.error.message, "string");
    assert.equal(typeof j.error.type, "string");
    assert.ok("param" in j.error && "code" in j.error);
    assert.equal(r.headers.get("access-control-allow-origin"), null);  // CORS is off unless configured
    await health();
  });
}

// Raw sockets: a broken HTTP request line, and a client that sends half a body then disappears.
await t.check("garbage request line", async () => {
  const reply = await new Promise((resolve) => {
    const u = new URL(server.url);
    const s = net.connect(Number(u.port), u.hostname, () => s.end("NOT HTTP AT ALL\r\n\r\n"));
    let data = "";
    s.on("data", (d) => (data += d));
    s.on("close", () => resolve(data));
    s.on("error", () => resolve(data));
  });
  assert.ok(reply === "" || /^HTTP\/1\.1 4\d\d/.test(reply), reply.slice(0, 80));
  await health();
});
await t.check("half a body, then the client vanishes", async () => {
  await new Promise((resolve) => {
    const u = new URL(server.url);
    const s = net.connect(Number(u.port), u.hostname, () => {
      s.write("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":");
      setTimeout(() => { s.destroy(); resolve(); }, 100);
    });
    s.on("error", resolve);
  });
  await health();
});
// Disconnects, on the fixture's slower model (next to MODEL_DIR) so that generations outlast the 1 s heartbeat.
const slow = await startServer(bin, path.join(path.dirname(model), "slow"), `${work}/slow.db`);
const generated = async () => Number((await (await fetch(slow.url + "/metrics")).text()).match(/^baleine_engine_generated_tokens_total (\d+)/m)[1]);
// Waits until the engine stops generating; returns the tokens generated since `before`.
async function quiet(before) {
  let last = -1, now = await generated();
  for (let i = 0; i < 50 && now !== last; i++) {
    await new Promise((res) => setTimeout(res, 300));
    last = now;
    now = await generated();
  }
  assert.equal(now, last, "still generating");
  return now - before;
}
for (const stream of [true, false]) {
  await t.check(`a ${stream ? "stream" : "non-streaming request"} whose client disconnects is cancelled`, async () => {
    const before = await generated();
    const ac = new AbortController();
    const pending = fetch(slow.url + "/v1/chat/completions", { method: "POST", signal: ac.signal, headers: { "Content-Type": "application/json" },
                                                               body: JSON.stringify({ model: "slow", messages: msgs, stream, max_tokens: 1000, n: 8, ignore_eos: true }) });
    if (stream) await (await pending).body.getReader().read();
    else pending.catch(() => {});
    setTimeout(() => ac.abort(), stream ? 0 : 300);
    const n = await quiet(before);
    assert.ok(n < 8000, `generated ${n}`);  // all 8 x 1000 tokens would run unless cancelled
    // The handler returns once the engine has acknowledged the cancel; on a loaded machine that can lag the
    // last token by a little, so wait (bounded) for the slot to be released.
    let h = await (await fetch(slow.url + "/health")).json();
    for (let i = 0; i < 50 && h.in_flight !== 0; i++) {
      await new Promise((res) => setTimeout(res, 200));
      h = await (await fetch(slow.url + "/health")).json();
    }
    assert.equal(h.in_flight, 0);
  });
}
await stopServer(slow);
await t.check("still serving: a real generation after all of the above", async () => {
  const r = await fetch(server.url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" }, body: chat({ max_tokens: 4 }) });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.equal(typeof j.choices[0].message.content, "string");
});
console.log(`hostile requests: ${cases.length + 2}`);
await stopServer(server);
t.done();
