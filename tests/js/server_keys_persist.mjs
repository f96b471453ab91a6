// API keys (`baleine keys`), 401 / 429 with Retry-After, the usage ledger, and durability: the server is killed
// with SIGKILL in the middle of a stream, restarted on the same database, and the conversation (with the partial
// answer) and the ledger are there. Then SIGTERM drains a running stream before exiting.
// Usage: node server_keys_persist.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

// MODEL_DIR: a model slow enough (a few hundred tokens/s) that a 600-token stream is still running after 1.5 s.
const [bin, modelDir, work] = process.argv.slice(2);
const model = modelDir;
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const db = `${work}/server.db`;
const keys = (...args) => execFileSync(bin, ["keys", "--db", db, ...args], { encoding: "utf8" });
const t = harness();
const msgs = [{ role: "user", content: "hello" }];

const secret = keys("create", "alice").trim();
const limited = keys("create", "bob", "--rpm", "2").trim();
let server = await startServer(bin, model, db);
const post = (path, body, key) => fetch(server.url + path, {
  method: "POST", headers: { "Content-Type": "application/json", ...(key ? { Authorization: "Bearer " + key } : {}) },
  body: JSON.stringify(body) });

await t.check("keys are stored hashed", async () => {
  const raw = fs.readFileSync(db).toString("latin1") + (fs.existsSync(db + "-wal") ? fs.readFileSync(db + "-wal").toString("latin1") : "");
  assert.ok(secret.startsWith("sk-") && !raw.includes(secret));
  assert.match(keys("list"), /alice.*active/);
});
await t.check("no key, a wrong key: 401 with an OpenAI error", async () => {
  for (const key of [null, "sk-wrong"]) {
    const r = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 2 }, key);
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.type, "authentication_error");
  }
  const sdk = new OpenAI({ baseURL: server.url + "/v1", apiKey: "sk-nope", maxRetries: 0 });
  await assert.rejects(sdk.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});
await t.check("a valid key works", async () => {
  const sdk = new OpenAI({ baseURL: server.url + "/v1", apiKey: secret, maxRetries: 0 });
  const r = await sdk.chat.completions.create({ model: "slow", messages: msgs, max_tokens: 3 });
  assert.ok(r.usage.completion_tokens >= 1);
});
await t.check("rate limit: the third request in a minute gets 429 with Retry-After", async () => {
  for (let i = 0; i < 2; i++) assert.equal((await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 2 }, limited)).status, 200);
  const r = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 2 }, limited);
  assert.equal(r.status, 429);
  const wait = Number(r.headers.get("retry-after"));
  assert.ok(wait >= 1 && wait <= 60, "Retry-After " + wait);
  assert.equal((await r.json()).error.type, "rate_limit_error");
});

let conversation = null;
await t.check("SIGKILL mid-stream loses neither the conversation nor the ledger", async () => {
  const auth = { "Content-Type": "application/json", Authorization: "Bearer " + secret };
  conversation = await (await fetch(server.url + "/api/conversations", { method: "POST", headers: auth, body: JSON.stringify({ title: "kill test", model: "slow" }) })).json();
  await fetch(server.url + `/api/conversations/${conversation.id}/messages`, { method: "POST", headers: auth, body: JSON.stringify({ role: "user", content: "hello" }) });
  const r = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 600, ignore_eos: true, stream: true, conversation_id: conversation.id }, secret);
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  await reader.read();
  await new Promise((res) => setTimeout(res, 1500));  // past the once-a-second progress save
  server.proc.kill("SIGKILL");
  await new Promise((res) => server.proc.on("exit", res));
  server = await startServer(bin, model, db);
  const c = await (await fetch(server.url + `/api/conversations/${conversation.id}`, { headers: auth })).json();
  assert.equal(c.title, "kill test");
  assert.equal(c.messages.length, 2);
  assert.equal(c.messages[0].content, "hello");
  assert.equal(c.messages[1].role, "assistant");
  // The answer was still streaming when the server died: what had been generated a second in is kept.
  assert.equal(c.messages[1].status, "streaming");
  assert.ok(c.messages[1].content.length + c.messages[1].reasoning.length > 0, "partial answer lost");
  const list = keys("list", "--usage");
  const alice = list.split("\n").findIndex((l) => l.includes("alice"));
  const m = list.split("\n")[alice + 1].match(/(\d+) requests, (\d+) prompt/);
  assert.ok(m && Number(m[1]) >= 2 && Number(m[2]) > 0, list);  // the finished request and the killed one
});
await t.check("revoked keys are refused at once", async () => {
  keys("revoke", "alice");
  const r = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 2 }, secret);
  assert.equal(r.status, 401);
});
await t.check("SIGTERM drains: a running stream finishes with [DONE], new requests get 503, exit 0", async () => {
  const bob = keys("create", "carol").trim();
  const s = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 300, n: 2, ignore_eos: true, stream: true }, bob);
  assert.equal(s.status, 200);
  const reader = s.body.getReader();
  await reader.read();
  server.proc.kill("SIGTERM");
  await new Promise((res) => setTimeout(res, 100));
  const refused = await post("/v1/chat/completions", { model: "slow", messages: msgs, max_tokens: 2 }, bob).catch(() => null);
  if (refused) assert.equal(refused.status, 503);
  let text = "";
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  assert.ok(text.includes("data: [DONE]"), "stream cut: " + text.slice(-200));
  assert.equal((text.match(/"finish_reason":"length"/g) || []).length, 2, "every choice ran to max_tokens");
  const code = await new Promise((res) => (server.proc.exitCode !== null ? res(server.proc.exitCode) : server.proc.on("exit", (c) => res(c))));
  assert.equal(code, 0);
});
if (server.proc.exitCode === null) await stopServer(server, "SIGKILL");
t.done();
