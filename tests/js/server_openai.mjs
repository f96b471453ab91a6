// The official `openai` SDK against a running `baleine serve`: models, chat (streaming and not), reasoning_content
// for deepseek-reasoner, JSON mode, completions (echo + logprobs as lm-evaluation-harness asks, FIM), errors.
// Usage: node server_openai.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
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
const ask = [{ role: "system", content: "You are terse." }, { role: "user", content: "Tell me about this License." }];

function checkUsage(u) {
  for (const k of ["prompt_tokens", "prompt_cache_hit_tokens", "prompt_cache_miss_tokens", "completion_tokens", "total_tokens"])
    assert.equal(typeof u[k], "number", k);
  assert.equal(u.prompt_tokens, u.prompt_cache_hit_tokens + u.prompt_cache_miss_tokens);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.equal(typeof u.completion_tokens_details.reasoning_tokens, "number");
  assert.ok(u.cost_usd > 0, "cost_usd");
}

await t.check("models.list shows the real id and the DeepSeek names", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes("deepseek-chat") && ids.includes("deepseek-reasoner") && ids.includes("model"), ids.join(","));
});

await t.check("a model without a thinking template: new names ignore thinking, deepseek-reasoner always thinks", async () => {
  const byId = {};
  for await (const m of client.models.list()) byId[m.id] = m;
  for (const id of ["model", "deepseek-chat", "deepseek-flash", "deepseek-v4-pro"]) {
    assert.equal(byId[id]?.thinking, "never", id);
    assert.equal(byId[id].reasoning, false, id);
  }
  assert.equal(byId["deepseek-reasoner"].thinking, "always");
  const r = await client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 8, temperature: 0,
                                                   thinking: { type: "enabled" }, reasoning_effort: "max", logprobs: true });
  assert.equal(r.model, "deepseek-flash");
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
  assert.ok(r.choices[0].logprobs.content.length >= 1);  // not thinking, so logprobs work
  const plain = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 8, temperature: 0 });
  assert.equal(r.choices[0].message.content, plain.choices[0].message.content);  // same model, same prompt
  await assert.rejects(client.chat.completions.create({ model: "deepseek-flash", messages: ask, thinking: { type: "sometimes" } }),
                       (e) => e.status === 400 && e.param === "thinking");
});

await t.check("chat, not streaming: content, finish_reason, usage and cost", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "deepseek-chat");
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  // DeepSeek chat prices: miss 0.27, hit 0.07, output 1.10 USD per 1M tokens.
  const u = r.usage;
  const want = (u.prompt_cache_hit_tokens * 0.07 + u.prompt_cache_miss_tokens * 0.27 + u.completion_tokens * 1.1) / 1e6;
  assert.ok(Math.abs(u.cost_usd - want) < 1e-12, `${u.cost_usd} vs ${want}`);
});

await t.check("greedy chat is deterministic; streaming gives the same text", async () => {
  const a = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 16, temperature: 0 });
  const b = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 16, temperature: 0 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const stream = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 16, temperature: 0,
                                                        stream: true, stream_options: { include_usage: true } });
  let text = "", chunks = 0, usage = null, finish = null, role = null;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, "chat.completion.chunk");
    if (c.usage) { usage = c.usage; assert.equal(c.choices.length, 0); continue; }
    const d = c.choices[0].delta;
    if (d.role) role = d.role;
    text += d.content ?? "";
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(role, "assistant");
  assert.ok(chunks >= 3, "chunks " + chunks);
  assert.equal(text, a.choices[0].message.content);
  assert.equal(finish, a.choices[0].finish_reason);
  checkUsage(usage);
  assert.equal(usage.completion_tokens, a.usage.completion_tokens);
});

await t.check("deepseek-reasoner streams reasoning_content before content", async () => {
  const stream = await client.chat.completions.create({ model: "deepseek-reasoner", messages: ask, max_tokens: 24,
                                                        temperature: 0.8, seed: 3, stream: true, stream_options: { include_usage: true } });
  let reasoning = "", content = "", sawContent = false, reasoningAfterContent = false, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.reasoning_content) { reasoning += ch.delta.reasoning_content; if (sawContent) reasoningAfterContent = true; }
      if (ch.delta.content) { content += ch.delta.content; sawContent = true; }
    }
  }
  assert.ok(reasoning.length > 0, "no reasoning_content");
  assert.ok(!reasoningAfterContent);
  assert.ok(!reasoning.includes("<think>") && !content.includes("</think>"));
  assert.ok(usage.completion_tokens_details.reasoning_tokens > 0);
  // Reasoner prices: output 2.19 per 1M.
  const want = (usage.prompt_cache_hit_tokens * 0.14 + usage.prompt_cache_miss_tokens * 0.55 + usage.completion_tokens * 2.19) / 1e6;
  assert.ok(Math.abs(usage.cost_usd - want) < 1e-12);
  const r = await client.chat.completions.create({ model: "deepseek-reasoner", messages: ask, max_tokens: 24, temperature: 0.8, seed: 3 });
  assert.equal(r.choices[0].message.reasoning_content, reasoning);
  assert.equal(r.choices[0].message.content, content);
});

await t.check("n = 3, stop strings, logprobs with top_logprobs", async () => {
  const r = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 8, n: 3, temperature: 1, seed: 1,
                                                   logprobs: true, top_logprobs: 3 });
  assert.equal(r.choices.length, 3);
  for (const c of r.choices) {
    const lp = c.logprobs.content;
    assert.ok(lp.length >= 1);
    for (const e of lp) {
      assert.ok(e.logprob <= 0);
      assert.equal(e.top_logprobs.length, 3);
      assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[2].logprob);
      assert.ok(e.logprob <= e.top_logprobs[0].logprob + 1e-6);
    }
  }
  const a = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 20, temperature: 0 });
  const text = a.choices[0].message.content;
  if (text.length >= 4) {
    const stop = text.slice(2, 4);
    const b = await client.chat.completions.create({ model: "model", messages: ask, max_tokens: 20, temperature: 0, stop: [stop] });
    assert.equal(b.choices[0].message.content, text.slice(0, text.indexOf(stop)));
    assert.equal(b.choices[0].finish_reason, "stop");
  }
});

await t.check("chat prefix completion continues the assistant message", async () => {
  const base = [{ role: "user", content: "Tell me about this License." }];
  const prefix = "The License says";
  const full = await client.chat.completions.create({ model: "model", messages: base, max_tokens: 4, temperature: 0 });
  const cont = await client.chat.completions.create({ model: "model", max_tokens: 4, temperature: 0,
    messages: [...base, { role: "assistant", content: prefix, prefix: true }] });
  // The prompt is the history with its generation prompt, then the prefix text as is: count the prefix's tokens
  // through /completions echo (which adds a BOS).
  const echo = await client.completions.create({ model: "model", prompt: prefix, max_tokens: 0, echo: true, logprobs: 0 });
  const prefixTokens = echo.choices[0].logprobs.tokens.length - 1;
  assert.equal(cont.usage.prompt_tokens, full.usage.prompt_tokens + prefixTokens);
  assert.equal(typeof cont.choices[0].message.content, "string");
});

await t.check("response_format json_object always yields a JSON object", async () => {
  for (const max_tokens of [6, 30]) {
    const r = await client.chat.completions.create({ model: "model", messages: [{ role: "user", content: "JSON please" }],
                                                     max_tokens, temperature: 1, seed: 9, response_format: { type: "json_object" } });
    const obj = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof obj, "object");
    assert.equal(r.choices[0].finish_reason, "stop");
  }
});

await t.check("completions: text, echo + logprobs (lm-evaluation-harness), token prompts, FIM", async () => {
  const r = await client.completions.create({ model: "model", prompt: "This License", max_tokens: 5, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  checkUsage(r.usage);
  const e = await client.completions.create({ model: "model", prompt: "This License", max_tokens: 1, temperature: 0, echo: true, logprobs: 1 });
  const lp = e.choices[0].logprobs;
  assert.ok(e.choices[0].text.startsWith("This License"));
  assert.equal(lp.tokens.length, e.usage.prompt_tokens + 1);  // BOS + prompt tokens + one generated
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(lp.token_logprobs.slice(1).every((x) => x <= 0));
  assert.equal(lp.tokens.length, lp.text_offset.length);
  const z = await client.completions.create({ model: "model", prompt: [[5, 6, 7, 8], [9, 10]], max_tokens: 0, echo: true, logprobs: 0 });
  assert.equal(z.choices.length, 2);
  assert.equal(z.choices[0].logprobs.tokens.length, 4);
  assert.equal(z.choices[1].logprobs.tokens.length, 2);
  assert.equal(z.usage.completion_tokens, 0);
  const fim = await client.completions.create({ model: "model", prompt: "def f(x):\n    return ", suffix: "\n\nprint(f(2))", max_tokens: 4 });
  assert.equal(typeof fim.choices[0].text, "string");
  const s = await client.completions.create({ model: "model", prompt: "This", max_tokens: 4, stream: true });
  let n = 0;
  for await (const c of s) if (c.choices.length) n++;
  assert.ok(n >= 1);
});

await t.check("tokenizer endpoints agree with what completions see (lm-evaluation-harness remote tokenizer)", async () => {
  const info = await (await fetch(server.url + "/tokenizer_info")).json();
  assert.equal(typeof info.eos_token, "string");
  const tok = await (await fetch(server.url + "/tokenize", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: "This License", add_special_tokens: false }) })).json();
  const e = await client.completions.create({ model: "model", prompt: tok.tokens, max_tokens: 1, temperature: 0, echo: true, logprobs: 1 });
  assert.equal(e.usage.prompt_tokens, tok.tokens.length);
  const back = await (await fetch(server.url + "/detokenize", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tokens: tok.tokens }) })).json();
  assert.equal(back.prompt, "This License");
  // lm-evaluation-harness reads token_logprobs[ctxlen:-1] and checks greediness against max(top_logprobs): the
  // generated (greedy) token's logprob is the top one.
  const last = e.choices[0].logprobs;
  const n = last.token_logprobs.length;
  assert.equal(last.token_logprobs[n - 1], Math.max(...Object.values(last.top_logprobs[n - 1])));
});

await t.check("errors come back as OpenAI errors through the SDK", async () => {
  await assert.rejects(client.chat.completions.create({ model: "gpt-4", messages: ask }), (e) => e.status === 404 && /does not exist/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "model", messages: ask, max_tokens: 5000 }),
                       (e) => e instanceof OpenAI.BadRequestError && e.code === "context_length_exceeded");
  await assert.rejects(client.chat.completions.create({ model: "model", messages: [{ role: "user", content: "word ".repeat(3000) }] }),
                       (e) => e.status === 400 && e.code === "context_length_exceeded");
  await assert.rejects(client.chat.completions.create({ model: "model", messages: ask, temperature: 7 }),
                       (e) => e.status === 400 && e.param === "temperature");
  await assert.rejects(client.chat.completions.create({ model: "deepseek-reasoner", messages: ask, logprobs: true }),
                       (e) => e.status === 400 && e.param === "logprobs" && /'deepseek-reasoner'/.test(e.message));
  const lp = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 3, logprobs: true });
  assert.ok(lp.choices[0].logprobs.content.length >= 1, "deepseek-chat (non-thinking) supports logprobs");
});

await t.check("health and metrics", async () => {
  const h = await (await fetch(server.url + "/health")).json();
  assert.equal(h.status, "ok");
  const m = await (await fetch(server.url + "/metrics")).text();
  for (const name of ["baleine_requests_total", "baleine_completion_tokens_total", "baleine_queue_depth", "baleine_batch_size_mean",
                      "baleine_prefix_cache_hit_ratio", "baleine_time_to_first_token_seconds_bucket"])
    assert.ok(m.includes(name), name);
  assert.match(m, /baleine_requests_total\{endpoint="chat",status="200"\} [1-9]/);
});

const code = await stopServer(server);
await t.check("SIGTERM stops the server cleanly", async () => assert.equal(code, 0, server.stderr()));
t.done();
