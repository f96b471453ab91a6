// The other SDKs people point at DeepSeek, against `baleine serve` (the tiny test model, hybrid V3.1 template):
// Vercel's AI SDK through @ai-sdk/deepseek (reasoning text, streamed reasoning and text parts, thinking switched
// off by provider options, a multi-step tool loop whose second request carries the first step's assistant turn
// back as the SDK builds it) and LangChain's @langchain/deepseek (reasoning_content in additional_kwargs,
// streaming, bound tools with a ToolMessage round trip).
// Usage: node server_sdks.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import { createDeepSeek } from "@ai-sdk/deepseek";
import { generateText, streamText, tool, stepCountIs } from "ai";
import { ChatDeepSeek } from "@langchain/deepseek";
import { HumanMessage, ToolMessage } from "@langchain/core/messages";
import { z } from "zod";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--chat-format", "deepseek-v3.1"]);
const t = harness();
// The reasoning never holds tool-call syntax (the output parser's guarantee). Content without tools is the model's
// text as sampled: this random model samples special tokens there too, so content is not checked for them.
const MARKER = /<｜tool▁call/;
// Every request the SDKs send, as the server received it (to check what a tool loop sends back).
const seen = [];
const recordingFetch = async (url, init) => {
  if (init && typeof init.body === "string") seen.push(JSON.parse(init.body));
  return fetch(url, init);
};
const deepseek = createDeepSeek({ baseURL: server.url + "/v1", apiKey: "unused", fetch: recordingFetch });
const prompt = "Tell me about this License.";

await t.check("ai-sdk generateText: deepseek-flash thinks by default, reasoningText and text kept apart", async () => {
  const r = await generateText({ model: deepseek("deepseek-flash"), prompt, maxOutputTokens: 32, maxRetries: 0 });
  assert.equal(typeof r.reasoningText, "string");
  assert.ok(r.reasoningText.length > 0, "no reasoning: " + JSON.stringify(r.response?.body ?? r));
  assert.ok(!MARKER.test(r.reasoningText), "a tool-call marker in the reasoning: " + r.reasoningText);
  assert.ok(r.usage.outputTokens > 0);
});

await t.check("ai-sdk: providerOptions.deepseek.thinking disabled sends thinking {type: disabled} and gets no reasoning", async () => {
  seen.length = 0;
  const r = await generateText({ model: deepseek("deepseek-flash"), prompt, maxOutputTokens: 16, maxRetries: 0,
                                 providerOptions: { deepseek: { thinking: { type: "disabled" } } } });
  assert.deepEqual(seen.at(-1).thinking, { type: "disabled" });
  assert.ok(!r.reasoningText, "reasoning while disabled: " + r.reasoningText);
  assert.equal(typeof r.text, "string");
});

await t.check("ai-sdk streamText: reasoning deltas first, then text deltas; the joined parts are the final texts", async () => {
  const r = streamText({ model: deepseek("deepseek-flash"), prompt, maxOutputTokens: 40, temperature: 0, maxRetries: 0 });
  const order = [];
  let reasoning = "", text = "";
  for await (const part of r.fullStream) {
    if (part.type === "reasoning-delta") { reasoning += part.text; if (order.at(-1) !== "r") order.push("r"); }
    if (part.type === "text-delta") { text += part.text; if (order.at(-1) !== "t") order.push("t"); }
    if (part.type === "error") throw part.error;
  }
  assert.ok(reasoning.length > 0);
  assert.equal(order[0], "r");
  assert.ok(!order.includes("r", 1) || order.indexOf("t") === -1 || order.lastIndexOf("r") < order.indexOf("t"), order.join(""));
  assert.equal(await r.reasoningText, reasoning);
  assert.equal(await r.text, text);
  assert.ok(!MARKER.test(reasoning));
});

await t.check("ai-sdk tool loop: a required tool call, executed, and a second step the server accepts", async () => {
  seen.length = 0;
  const calls = [];
  const r = await generateText({
    model: deepseek("deepseek-flash"), maxRetries: 0, maxOutputTokens: 200,
    prompt: "What is 2 + 3? Use the tool.",
    tools: { add: tool({ description: "Adds two integers", inputSchema: z.object({ a: z.number().int(), b: z.number().int() }),
                         execute: async ({ a, b }) => { calls.push([a, b]); return String(a + b); } }) },
    toolChoice: "required", stopWhen: stepCountIs(2),
  });
  assert.ok(r.steps.length === 2, "steps: " + r.steps.length);
  assert.ok(r.steps[0].toolCalls.length >= 1 && r.steps[0].toolCalls[0].toolName === "add");
  assert.equal(calls.length, r.steps.reduce((n, s) => n + s.toolCalls.length, 0));  // every step's calls ran
  assert.ok(Number.isInteger(calls[0][0]) && Number.isInteger(calls[0][1]), JSON.stringify(calls));
  // The second request carries the assistant turn with its tool calls (and its reasoning, as this SDK sends it)
  // and the tool result; the server answered it (a 400 would have thrown above).
  const second = seen.at(-1);
  const assistant = second.messages.find((m) => m.role === "assistant");
  assert.ok(assistant && assistant.tool_calls.length >= 1, JSON.stringify(second.messages));
  assert.ok(second.messages.some((m) => m.role === "tool"));
  assert.ok(typeof assistant.reasoning_content === "string", "the SDK sent no reasoning_content: " + JSON.stringify(assistant));
  assert.ok(!MARKER.test(r.steps[0].reasoningText ?? ""));
});

const lc = (extra = {}) => new ChatDeepSeek({ model: "deepseek-reasoner", apiKey: "unused", maxRetries: 0,
                                              configuration: { baseURL: server.url + "/v1" }, maxTokens: 32, ...extra });

await t.check("langchain ChatDeepSeek.invoke: reasoning_content in additional_kwargs, content apart", async () => {
  const m = await lc().invoke([new HumanMessage(prompt)]);
  const reasoning = m.additional_kwargs.reasoning_content;
  assert.equal(typeof reasoning, "string");
  assert.ok(reasoning.length > 0, JSON.stringify(m.additional_kwargs));
  assert.equal(typeof m.content, "string");
  assert.ok(!MARKER.test(reasoning));
  assert.ok(m.usage_metadata.output_tokens > 0);
});

await t.check("langchain stream: reasoning chunks arrive, concatenated without markers", async () => {
  let reasoning = "", text = "";
  for await (const chunk of await lc().stream([new HumanMessage(prompt)])) {
    reasoning += chunk.additional_kwargs?.reasoning_content ?? "";
    text += typeof chunk.content === "string" ? chunk.content : "";
  }
  assert.ok(reasoning.length > 0, "no streamed reasoning");
  assert.ok(!MARKER.test(reasoning));
});

const add = { name: "add", description: "Adds two integers", schema: z.object({ a: z.number().int(), b: z.number().int() }) };
const toolRoundTrip = async (model) => {
  const history = [new HumanMessage("What is 2 + 3? Use the tool.")];
  const first = await lc({ model, maxTokens: 200 }).bindTools([add], { tool_choice: "required" }).invoke(history);
  assert.ok(first.tool_calls.length >= 1, JSON.stringify(first));
  assert.equal(first.tool_calls[0].name, "add");
  const { a, b } = first.tool_calls[0].args;
  assert.ok(Number.isInteger(a) && Number.isInteger(b), JSON.stringify(first.tool_calls[0].args));
  history.push(first);
  for (const c of first.tool_calls) history.push(new ToolMessage({ tool_call_id: c.id, content: String(c.args.a + c.args.b) }));
  return { first, second: () => lc({ model, maxTokens: 24 }).bindTools([add]).invoke(history) };
};

await t.check("langchain bindTools, deepseek-chat: a tool call, a ToolMessage back, and an answer", async () => {
  const { second } = await toolRoundTrip("deepseek-chat");
  assert.equal(typeof (await second()).content, "string");
});

// @langchain/deepseek 1.1.13 keeps reasoning_content in additional_kwargs but does not send it back with the
// AIMessage; DeepSeek's API (and so this server) refuses a thinking request whose tool turn dropped it. The
// forced call itself comes even in thinking mode (no stop token may end the reasoning before it).
await t.check("langchain bindTools, deepseek-reasoner: the forced call comes; the SDK drops reasoning_content, a 400 says so", async () => {
  const { first, second } = await toolRoundTrip("deepseek-reasoner");
  assert.ok(first.additional_kwargs.reasoning_content.length > 0);
  await assert.rejects(second(), (e) => e.status === 400 && /reasoning_content/.test(e.message));
});

t.done();
await stopServer(server);
