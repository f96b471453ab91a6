// Today's DeepSeek API through the official `openai` SDK, on the tiny test model served with the hybrid (V3.1)
// template: the current model names and their capabilities, thinking on and off per request, reasoning_effort's
// budget, the SDK tool loop that sends choices[0].message back as returned (thinking on and off), the
// reasoning_content rule (kept within a tool turn, dropped between user turns, 400 when a tool turn drops it),
// logprobs without thinking, logit_bias, image parts, and Responses' reasoning.effort.
// Usage: node server_thinking.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--chat-format", "deepseek-v3.1"]);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const t = harness();
const ask = [{ role: "user", content: "Tell me about this License." }];
const tools = [{ type: "function", function: { name: "add", description: "Adds two integers",
  parameters: { type: "object", properties: { a: { type: "integer" }, b: { type: "integer" } }, required: ["a", "b"], additionalProperties: false } } }];
const post = async (path, body) => fetch(server.url + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

await t.check("models.list: the current and retired DeepSeek names, each saying it can toggle thinking", async () => {
  const byId = {};
  for await (const m of client.models.list()) byId[m.id] = m;
  for (const id of ["model", "deepseek-chat", "deepseek-reasoner", "deepseek-flash", "deepseek-v4-pro"]) {
    assert.ok(byId[id], "missing " + id + ": " + Object.keys(byId).join(","));
    assert.equal(byId[id].thinking, "toggle", id);
    assert.equal(byId[id].reasoning, true, id);
    assert.equal(byId[id].thinking_default, id !== "deepseek-chat", id);
  }
  const cfg = await (await fetch(server.url + "/api/config")).json();
  assert.equal(cfg.models.find((m) => m.id === "deepseek-flash").thinking, "toggle");
});

await t.check("thinking is on by default for deepseek-flash, off for deepseek-chat, and the request's field wins", async () => {
  const on = await client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 24, seed: 1 });
  assert.equal(on.model, "deepseek-flash");
  assert.equal(typeof on.choices[0].message.reasoning_content, "string");
  assert.ok(on.usage.completion_tokens_details.reasoning_tokens > 0, JSON.stringify(on.usage));
  const off = await client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 24, seed: 1, thinking: { type: "disabled" } });
  assert.equal(off.usage.completion_tokens_details.reasoning_tokens, 0);
  // The prompts differ by exactly the opening: <think> vs </think> (one special token each).
  assert.equal(off.usage.prompt_tokens, on.usage.prompt_tokens);
  const chat = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 24, seed: 1 });
  assert.equal(chat.usage.completion_tokens_details.reasoning_tokens, 0);
  const chatOn = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 24, seed: 1, thinking: { type: "enabled" } });
  assert.ok(chatOn.usage.completion_tokens_details.reasoning_tokens > 0);
});

await t.check("thinking ignores temperature (same seed, any temperature: the same answer); non-thinking applies it", async () => {
  const a = await client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 16, seed: 7, temperature: 0 });
  const b = await client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 16, seed: 7, temperature: 1.9, top_p: 0.1 });
  assert.equal(a.choices[0].message.reasoning_content + a.choices[0].message.content,
               b.choices[0].message.reasoning_content + b.choices[0].message.content);
  const seen = new Set();
  for (const temperature of [0, 2])
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 16, seed, temperature });
      seen.add(temperature + ":" + r.choices[0].message.content);
    }
  assert.ok(seen.size >= 2, "temperature 0 and 2 gave the same text for every seed");
});

await t.check("reasoning_effort: low stops reasoning at a quarter of max_tokens; max lets it run", async () => {
  const base = { model: "deepseek-flash", messages: ask, max_tokens: 40, seed: 4, ignore_eos: true };
  const low = await client.chat.completions.create({ ...base, reasoning_effort: "low" });
  const rl = low.usage.completion_tokens_details.reasoning_tokens;
  assert.ok(rl >= 1 && rl <= 11, "low: " + rl);  // 10 tokens of reasoning, then the forced </think>
  assert.equal(low.usage.completion_tokens, 40);
  const minimal = await client.chat.completions.create({ ...base, reasoning_effort: "minimal" });  // maps to low
  assert.equal(minimal.usage.completion_tokens_details.reasoning_tokens, rl);
  const max = await client.chat.completions.create({ ...base, reasoning_effort: "max" });
  assert.ok(max.usage.completion_tokens_details.reasoning_tokens > rl, "max: " + max.usage.completion_tokens_details.reasoning_tokens);
});

await t.check("a forced tool call in thinking mode always comes: no stop token ends the reasoning first (12 seeds)", async () => {
  for (let seed = 1; seed <= 12; ++seed) {
    const r = await client.chat.completions.create({ model: "deepseek-reasoner", messages: [{ role: "user", content: "Add 2 and 3." }],
                                                     tools, tool_choice: "required", max_tokens: 120, seed });
    assert.equal(r.choices[0].finish_reason, "tool_calls", "seed " + seed + ": " + JSON.stringify(r.choices[0]));
    assert.equal(r.choices[0].message.tool_calls[0].function.name, "add");
  }
});

await t.check("bogus thinking / reasoning_effort values get a 400 naming the field", async () => {
  for (const [extra, param] of [[{ thinking: true }, "thinking"], [{ thinking: { type: "on" } }, "thinking"],
                                [{ thinking: "enabled" }, "thinking"], [{ reasoning_effort: "huge" }, "reasoning_effort"],
                                [{ reasoning_effort: 2 }, "reasoning_effort"]])
    await assert.rejects(client.chat.completions.create({ model: "deepseek-flash", messages: ask, max_tokens: 4, ...extra }),
                         (e) => e instanceof OpenAI.BadRequestError && e.param === param && e.error.type === "invalid_request_error",
                         JSON.stringify(extra));
});

for (const thinking of [true, false]) {
  await t.check(`the openai-SDK tool loop (message pushed back as returned), thinking ${thinking ? "on" : "off"}`, async () => {
    const extra = { thinking: { type: thinking ? "enabled" : "disabled" } };
    const messages = [{ role: "user", content: "What is 2 + 3? Use the tool." }];
    const first = await client.chat.completions.create({ model: "deepseek-flash", messages, tools, tool_choice: "required", max_tokens: 200, seed: 2, ...extra });
    const msg = first.choices[0].message;
    assert.equal(first.choices[0].finish_reason, "tool_calls");
    assert.ok(msg.tool_calls.length >= 1);
    if (thinking) {
      assert.equal(typeof msg.reasoning_content, "string");
      assert.ok(!msg.reasoning_content.includes("<｜tool▁call"), "tool-call markers leaked into reasoning_content: " + msg.reasoning_content);
    } else {
      assert.equal(msg.reasoning_content, undefined);
    }
    messages.push(msg);
    for (const c of msg.tool_calls) {
      const args = JSON.parse(c.function.arguments);
      messages.push({ role: "tool", tool_call_id: c.id, content: String(args.a + args.b) });
    }
    const second = await client.chat.completions.create({ model: "deepseek-flash", messages, tools, max_tokens: 40, seed: 3, ...extra });
    assert.equal(typeof second.choices[0].message.content, "string");
    if (!thinking) return;
    // Kept in the prompt: a longer reasoning_content sent back makes a longer prompt...
    const longer = structuredClone(messages);
    longer[1].reasoning_content += " and some more words of reasoning";
    const third = await client.chat.completions.create({ model: "deepseek-flash", messages: longer, tools, max_tokens: 2, seed: 3, ...extra });
    assert.ok(third.usage.prompt_tokens > second.usage.prompt_tokens, `${third.usage.prompt_tokens} vs ${second.usage.prompt_tokens}`);
    // ...and dropping it within the tool turn is a 400 naming the field and the model asked for.
    const dropped = structuredClone(messages);
    delete dropped[1].reasoning_content;
    await assert.rejects(client.chat.completions.create({ model: "deepseek-flash", messages: dropped, tools, max_tokens: 2, ...extra }),
                         (e) => e.status === 400 && e.param === "messages[1].reasoning_content" && /deepseek-flash/.test(e.message));
    // Once a new user message starts another turn, the earlier reasoning is ignored: no error, not in the prompt.
    const later = [...messages, { role: "assistant", content: second.choices[0].message.content, reasoning_content: "x" },
                   { role: "user", content: "Thanks." }];
    const a = await client.chat.completions.create({ model: "deepseek-flash", messages: later, max_tokens: 2, ...extra });
    const b = await client.chat.completions.create({ model: "deepseek-flash", max_tokens: 2, ...extra,
      messages: later.map((m) => (m.role === "assistant" ? { ...m, reasoning_content: "a much longer reasoning text that is not kept" } : m)) });
    assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
    const c = await client.chat.completions.create({ model: "deepseek-flash", max_tokens: 2, ...extra,
      messages: later.map((m) => { const { reasoning_content, ...rest } = m; return rest; }) });
    assert.equal(c.usage.prompt_tokens, a.usage.prompt_tokens);
  });
}

await t.check("logprobs work without thinking and are refused with it (naming the model asked for)", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 4, logprobs: true, top_logprobs: 2 });
  assert.ok(r.choices[0].logprobs.content.length >= 1);
  await assert.rejects(client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 4, logprobs: true, thinking: { type: "enabled" } }),
                       (e) => e.status === 400 && e.param === "logprobs" && /'deepseek-chat'/.test(e.message) && !/deepseek-reasoner/.test(e.message));
});

await t.check("logit_bias -100 stops the greedy token (the runner-up comes instead); bad ids and values get 400", async () => {
  const base = { model: "deepseek-chat", messages: ask, max_tokens: 1, temperature: 0, logprobs: true, top_logprobs: 2 };
  const r = await client.chat.completions.create(base);
  const [best, second] = r.choices[0].logprobs.content[0].top_logprobs;
  assert.equal(r.choices[0].logprobs.content[0].token, best.token);
  const info = await (await fetch(server.url + "/tokenizer_info")).json();
  // The API names tokens by text, not id: find the greedy token's id by banning halves of the vocabulary (the
  // first token changes exactly when its id is in the banned range), then ban that one id alone.
  const first = async (bias) => (await client.chat.completions.create({ ...base, logit_bias: bias })).choices[0].logprobs.content[0].token;
  const range = (lo, hi) => Object.fromEntries(Array.from({ length: hi - lo }, (_, i) => [lo + i, -100]));
  let lo = 0, hi = info.vocab_size;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((await first(range(lo, mid))) !== best.token) hi = mid; else lo = mid;
  }
  assert.equal(await first({ [lo]: -100 }), second.token, "banning the greedy id must give the runner-up");
  assert.equal(await first({ [lo === 0 ? 1 : 0]: -100 }), best.token, "banning another id changes nothing");
  await first({ [lo]: -99.5, [lo + 1 < info.vocab_size ? lo + 1 : 0]: 100 });  // any value in [-100, 100] is accepted
  for (const bias of [{ [info.vocab_size]: 1 }, { "-3": 1 }, { x: 1 }, { 5: 100.5 }, { 5: -101 }])
    await assert.rejects(client.chat.completions.create({ ...base, logit_bias: bias }),
                         (e) => e.status === 400 && e.param === "logit_bias", JSON.stringify(bias));
});

await t.check("image content parts get a 400 naming messages[i].content[j]: the model has no vision", async () => {
  const parts = [{ type: "text", text: "What is in this picture?" }, { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }];
  await assert.rejects(client.chat.completions.create({ model: "deepseek-flash", messages: [{ role: "user", content: parts }] }),
                       (e) => e.status === 400 && e.param === "messages[0].content[1]" && /no vision/.test(e.message));
});

await t.check("Responses: reasoning.effort none turns thinking off, others on; bogus effort is a 400", async () => {
  // temperature 0 makes the thinking-off run greedy (the tiny model could write a <think> of its own when sampling).
  const run = async (effort) => {
    const res = await post("/v1/responses", { model: "deepseek-flash", input: "Tell me about this License.", max_output_tokens: 16,
                                              temperature: 0, reasoning: { effort } });
    return { status: res.status, body: await res.json() };
  };
  const none = await run("none"), max = await run("max");
  assert.equal(none.status, 200, JSON.stringify(none.body));
  assert.equal(max.status, 200, JSON.stringify(max.body));
  const reasoningItems = (b) => b.output.filter((o) => o.type === "reasoning").length;
  assert.equal(reasoningItems(none.body), 0, JSON.stringify(none.body.output));
  assert.ok(reasoningItems(max.body) > 0, JSON.stringify(max.body.output));
  const bad = await run("enormous");
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.param, "reasoning.effort");
});

const code = await stopServer(server);
await t.check("SIGTERM stops the server cleanly", async () => assert.equal(code, 0, server.stderr()));
t.done();
