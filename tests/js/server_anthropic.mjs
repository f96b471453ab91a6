// The Anthropic-compatible API (/anthropic/v1/messages, DeepSeek's base URL for Anthropic clients) through the
// official @anthropic-ai/sdk, on the tiny test model served with the hybrid (V3.1) template: messages compared with
// /v1/chat/completions on the same greedy request, streaming (messages.stream and its final message), the tool
// loop with tool_use / tool_result, thinking blocks returned and sent back (kept within the tool turn, 400 when
// dropped), effort and budget_tokens, count_tokens, and errors in Anthropic's shape (the SDK's error classes).
// Usage: node server_anthropic.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import Anthropic from "@anthropic-ai/sdk";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--chat-format", "deepseek-v3.1"]);
const client = new Anthropic({ baseURL: server.url + "/anthropic", apiKey: "unused", maxRetries: 0 });
const t = harness();
const ask = [{ role: "user", content: "Tell me about this License." }];
const off = { type: "disabled" };
const post = async (path, body) => {
  const r = await fetch(server.url + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
};
const tokens = async (text) => (await post("/tokenize", { prompt: text })).body.count;
const tools = [{ name: "add", description: "Adds two integers",
  input_schema: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } }, required: ["a", "b"], additionalProperties: false } }];

await t.check("messages.create answers as the chat completion of the same greedy request (text, tokens, usage)", async () => {
  const m = await client.messages.create({ model: "deepseek-flash", max_tokens: 24, messages: ask, temperature: 0, thinking: off,
                                           system: "You are terse.", metadata: { user_id: "u1" } });
  assert.equal(m.type, "message");
  assert.equal(m.role, "assistant");
  assert.equal(m.model, "deepseek-flash");
  assert.match(m.id, /^msg-/);
  const chat = await post("/v1/chat/completions", { model: "deepseek-flash", max_tokens: 24, temperature: 0, thinking: off,
                                                   messages: [{ role: "system", content: "You are terse." }, ...ask] });
  const c = chat.body.choices[0];
  assert.deepEqual(m.content, c.message.content ? [{ type: "text", text: c.message.content }] : []);
  assert.equal(m.stop_reason, c.finish_reason === "length" ? "max_tokens" : "end_turn");
  assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, chat.body.usage.prompt_tokens);
  assert.equal(m.usage.output_tokens, chat.body.usage.completion_tokens);
  assert.equal(m.usage.cache_creation_input_tokens, 0);
  const counted = await client.messages.countTokens({ model: "deepseek-flash", messages: ask, system: "You are terse.", thinking: off });
  assert.equal(counted.input_tokens, chat.body.usage.prompt_tokens);
});

await t.check("messages.stream: the events in order and a final message equal to the non-streamed one", async () => {
  const body = { model: "deepseek-chat", max_tokens: 30, messages: ask, temperature: 0 };
  const whole = await client.messages.create(body);
  const stream = client.messages.stream(body);
  const types = [];
  let text = "";
  stream.on("streamEvent", (e) => types.push(e.type));
  stream.on("text", (d) => { text += d; });
  const final = await stream.finalMessage();
  assert.deepEqual(final.content, whole.content);
  assert.equal(final.stop_reason, whole.stop_reason);
  assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
  assert.equal(text, whole.content.map((b) => b.text).join(""));
  assert.equal(types[0], "message_start");
  assert.equal(types.at(-1), "message_stop");
  assert.equal(types.at(-2), "message_delta");
  if (whole.content.length) assert.ok(types.includes("content_block_start") && types.includes("content_block_delta") && types.includes("content_block_stop"));
  // Raw SSE: named events whose data carries the same type.
  const r = await fetch(server.url + "/anthropic/v1/messages", { method: "POST", headers: { "Content-Type": "application/json" },
                                                                  body: JSON.stringify({ ...body, stream: true }) });
  assert.match(r.headers.get("content-type"), /text\/event-stream/);
  const raw = [];
  for (const ev of (await r.text()).trim().split("\n\n")) {
    const [e, d] = ev.split("\n");
    assert.equal(JSON.parse(d.slice(6)).type, e.slice(7), ev);
    raw.push(e.slice(7));
  }
  // The SDK swallows pings; the raw stream has one right after message_start.
  assert.deepEqual(raw.slice(0, 2), ["message_start", "ping"]);
});

await t.check("stop_sequences end the answer with stop_reason stop_sequence and name the sequence", async () => {
  const base = { model: "deepseek-chat", max_tokens: 30, messages: ask, temperature: 0 };
  const whole = await client.messages.create(base);
  const text = whole.content[0].text;
  assert.ok(text.length > 6, "the greedy answer is too short to cut: " + JSON.stringify(text));
  const seq = text.slice(3, 6);
  for (const stream of [false, true]) {
    const m = stream ? await client.messages.stream({ ...base, stop_sequences: [seq] }).finalMessage()
                     : await client.messages.create({ ...base, stop_sequences: [seq] });
    assert.equal(m.stop_reason, "stop_sequence");
    assert.equal(m.stop_sequence, seq);
    assert.equal(m.content[0].text, text.slice(0, text.indexOf(seq)));
  }
});

for (const thinking of [true, false]) {
  await t.check(`the SDK tool loop: tool_use, then tool_result with the content sent back as returned, thinking ${thinking ? "on" : "off"}`, async () => {
    // top_k 1: a greedy (reproducible) loop. Sampled, thinking with a forced call sometimes ends without one — on
    // /v1/chat/completions too (seed 8 of the same request), a defect of the shared constrained path, not of this API.
    const extra = { top_k: 1, ...(thinking ? { thinking: { type: "enabled", budget_tokens: 20 } } : { thinking: off }) };
    const messages = [{ role: "user", content: "What is 2 + 3? Use the tool." }];
    const first = await client.messages.create({ model: "deepseek-flash", max_tokens: 200, messages, tools, tool_choice: { type: "any" }, ...extra });
    assert.equal(first.stop_reason, "tool_use");
    const uses = first.content.filter((b) => b.type === "tool_use");
    assert.ok(uses.length >= 1, JSON.stringify(first.content));
    for (const u of uses) {
      assert.equal(u.name, "add");
      assert.equal(typeof u.input.a, "number");
      assert.equal(typeof u.input.b, "number");
    }
    const thinkingBlocks = first.content.filter((b) => b.type === "thinking");
    if (thinking) {
      assert.equal(thinkingBlocks.length, 1);
      assert.equal(first.content[0].type, "thinking");
      assert.equal(typeof thinkingBlocks[0].signature, "string");
      assert.ok(thinkingBlocks[0].signature.length > 0);
      // The call block went to tool_use, not into the thinking (the random model may still sample a stray
      // end or separator token as text; the block opens with tool_calls_begin).
      assert.ok(!thinkingBlocks[0].thinking.includes("<｜tool▁calls▁begin｜>"), thinkingBlocks[0].thinking);
    } else {
      assert.equal(thinkingBlocks.length, 0);
    }
    messages.push({ role: "assistant", content: first.content });
    messages.push({ role: "user", content: uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: [{ type: "text", text: String(u.input.a + u.input.b) }] })) });
    const second = await client.messages.create({ model: "deepseek-flash", max_tokens: 30, messages, tools, ...extra });
    assert.ok(["end_turn", "max_tokens", "tool_use"].includes(second.stop_reason), second.stop_reason);
    if (!thinking) return;
    // The thinking block is kept in the prompt within the tool turn: a longer one makes a longer prompt...
    const count = async (msgs) => (await client.messages.countTokens({ model: "deepseek-flash", messages: msgs, tools, thinking: extra.thinking })).input_tokens;
    const longer = structuredClone(messages);
    longer[1].content[0].thinking += " and some more words of reasoning";
    assert.ok(await count(longer) > await count(messages));
    // ...and dropping it is a 400 in Anthropic's shape naming the message.
    const dropped = structuredClone(messages);
    dropped[1].content = dropped[1].content.filter((b) => b.type !== "thinking");
    await assert.rejects(client.messages.create({ model: "deepseek-flash", max_tokens: 30, messages: dropped, tools, ...extra }),
                         (e) => e instanceof Anthropic.BadRequestError && e.type === "invalid_request_error" &&
                                /messages\[1\].*thinking block/.test(e.message));
    // After a new user message, the earlier turn's thinking is ignored (not in the prompt, no error when dropped).
    const later = [...messages, { role: "assistant", content: second.content }, { role: "user", content: "Thanks." }];
    const without = later.map((m) => (m.role === "assistant" && Array.isArray(m.content) ? { ...m, content: m.content.filter((b) => b.type !== "thinking") } : m));
    assert.equal(await count(later), await count(without));
  });
}

await t.check("thinking is on by default for deepseek-flash; output_config.effort and budget_tokens bound the thinking", async () => {
  // top_k 1 makes the thinking answer greedy (thinking mode ignores temperature, as DeepSeek's API does).
  const base = { model: "deepseek-flash", max_tokens: 40, messages: ask, top_k: 1 };
  const thought = async (extra) => {
    const m = await client.messages.create({ ...base, ...extra });
    assert.equal(m.content[0].type, "thinking", JSON.stringify(m.content));
    return tokens(m.content[0].thinking);
  };
  const full = await thought({ output_config: { effort: "max" } });
  assert.ok(full > 12, "the greedy thinking is too short to bound: " + full);
  const low = await thought({ output_config: { effort: "low" } });  // a quarter of max_tokens: 10
  assert.ok(low <= 11 && low < full, `low ${low}, max ${full}`);
  const budget = await thought({ thinking: { type: "enabled", budget_tokens: 5 } });
  assert.ok(budget <= 6, "budget_tokens 5: " + budget);
  const none = await client.messages.create({ ...base, thinking: off });
  assert.ok(none.content.every((b) => b.type !== "thinking"));
});

await t.check("errors: Anthropic's shape, the SDK's classes, the field named", async () => {
  for (const [extra, field] of [[{ bogus: 1 }, "bogus"], [{ thinking: { type: "on" } }, "thinking.type"],
                                [{ output_config: { effort: "huge" } }, "output_config.effort"], [{ temperature: 3 }, "temperature"],
                                [{ tool_choice: { type: "sometimes" } }, "tool_choice.type"],
                                [{ messages: [{ role: "user", content: [{ type: "text", text: "x", colour: "red" }] }] }, "messages[0].content[0].colour"]])
    await assert.rejects(client.messages.create({ model: "deepseek-flash", max_tokens: 4, messages: ask, ...extra }),
                         (e) => e instanceof Anthropic.BadRequestError && e.status === 400 && e.type === "invalid_request_error" &&
                                e.message.includes(field), JSON.stringify(extra));
  await assert.rejects(client.messages.create({ model: "deepseek-flash", max_tokens: 4, messages: [{ role: "user", content: [
    { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }] }] }),
    (e) => e instanceof Anthropic.BadRequestError && /messages\[0\]\.content\[0\].*no vision/.test(e.message));
  await assert.rejects(client.messages.create({ model: "claude-sonnet-4-5", max_tokens: 4, messages: ask }),
                       (e) => e instanceof Anthropic.NotFoundError && e.type === "not_found_error");
  const raw = await post("/anthropic/v1/messages", { model: "deepseek-flash", messages: ask });
  assert.equal(raw.status, 400);
  assert.deepEqual(Object.keys(raw.body).sort(), ["error", "type"]);
  assert.equal(raw.body.type, "error");
  assert.equal(raw.body.error.type, "invalid_request_error");
  assert.match(raw.body.error.message, /max_tokens/);
  const notJson = await fetch(server.url + "/anthropic/v1/messages", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{" });
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).type, "error");
  const unknown = await post("/anthropic/v1/nothing", {});
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.type, "not_found_error");
});

await t.check("the connection guard refuses in Anthropic's shape under /anthropic (a form body: 415)", async () => {
  const r = await fetch(server.url + "/anthropic/v1/messages", { method: "POST", headers: { "Content-Type": "text/plain" }, body: "{}" });
  assert.equal(r.status, 415);
  const b = await r.json();
  assert.equal(b.type, "error");
  assert.equal(b.error.type, "invalid_request_error");
  const o = await fetch(server.url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "text/plain" }, body: "{}" });
  assert.equal(o.status, 415);
  assert.equal(typeof (await o.json()).error.code, "string");  // OpenAI's shape elsewhere
});

const code = await stopServer(server);
await t.check("SIGTERM stops the server cleanly", async () => assert.equal(code, 0, server.stderr()));

await t.check("x-api-key: a key protects /anthropic; missing or wrong is the SDK's AuthenticationError (401)", async () => {
  const { execFileSync } = await import("node:child_process");
  const secret = execFileSync(bin, ["keys", "create", "claude-code", "--db", `${work}/server.db`], { encoding: "utf8" }).trim();
  const keyed = await startServer(bin, model, `${work}/server.db`, ["--chat-format", "deepseek-v3.1"]);
  try {
    const missing = await fetch(keyed.url + "/anthropic/v1/messages", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "deepseek-flash", max_tokens: 4, messages: ask }) });
    assert.equal(missing.status, 401);
    const mb = await missing.json();
    assert.equal(mb.type, "error");
    assert.equal(mb.error.type, "authentication_error");
    const wrong = new Anthropic({ baseURL: keyed.url + "/anthropic", apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(wrong.messages.create({ model: "deepseek-flash", max_tokens: 4, messages: ask }),
                         (e) => e instanceof Anthropic.AuthenticationError && e.status === 401 && e.type === "authentication_error");
    const right = new Anthropic({ baseURL: keyed.url + "/anthropic", apiKey: secret, maxRetries: 0 });
    const m = await right.messages.create({ model: "deepseek-flash", max_tokens: 4, messages: ask, thinking: off });
    assert.equal(m.type, "message");
  } finally {
    await stopServer(keyed);
  }
});
t.done();
