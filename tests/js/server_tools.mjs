// Function calling and JSON-schema output through the official `openai` SDK against `baleine serve` on a tiny
// (nearly random) model: the decoding constraints must make even that model produce well-formed tool calls and
// schema-valid JSON. Schema conformance is checked by ajv, an independent validator.
// Usage: node server_tools.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import Ajv from "ajv";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const ajv = new Ajv({ strict: false, allErrors: true });
const t = harness();

const weatherParams = {
  type: "object",
  properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
const addParams = {
  type: "object",
  properties: { a: { type: "integer" }, b: { type: "integer" } },
  required: ["a", "b"],
  additionalProperties: false,
};
const tools = [
  { type: "function", function: { name: "get_weather", description: "Weather in a city", parameters: weatherParams, strict: true } },
  { type: "function", function: { name: "add", description: "Adds two integers", parameters: addParams } },
];
const schemaOf = { get_weather: ajv.compile(weatherParams), add: ajv.compile(addParams) };
const ask = [{ role: "user", content: "What is the weather in Paris?" }];

function checkCall(c) {
  assert.equal(c.type, "function");
  assert.match(c.id, /^call_[A-Za-z0-9]{24}$/);
  const v = schemaOf[c.function.name];
  assert.ok(v, "unknown tool " + c.function.name);
  const args = JSON.parse(c.function.arguments);
  assert.ok(v(args), c.function.name + " " + c.function.arguments + " " + JSON.stringify(v.errors));
}

await t.check("tool_choice required: message.tool_calls valid for their schemas, finish_reason tool_calls", async () => {
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "required",
                                                     max_tokens: 400, temperature: 1, seed });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, "tool_calls", JSON.stringify(r.choices[0]));
    assert.ok(m.tool_calls.length >= 1);
    m.tool_calls.forEach(checkCall);
    assert.ok(!(m.content || "").includes("tool"), "markers leaked into content: " + m.content);
  }
});

await t.check("named tool_choice calls exactly that function", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, max_tokens: 400, seed: 5,
                                                   tool_choice: { type: "function", function: { name: "add" } } });
  const calls = r.choices[0].message.tool_calls;
  assert.ok(calls.length >= 1);
  for (const c of calls) { assert.equal(c.function.name, "add"); checkCall(c); }
});

await t.check("parallel_tool_calls false: exactly one call", async () => {
  for (const seed of [6, 7, 8]) {
    const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "required",
                                                     parallel_tool_calls: false, max_tokens: 400, seed });
    assert.equal(r.choices[0].message.tool_calls.length, 1);
    checkCall(r.choices[0].message.tool_calls[0]);
  }
});

await t.check("parallel calls allowed: some seed produces several calls, each valid, ids distinct", async () => {
  let most = 0;
  for (let seed = 10; seed < 22 && most < 2; ++seed) {
    const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "required",
                                                     max_tokens: 450, temperature: 1.5, seed });
    const calls = r.choices[0].message.tool_calls;
    calls.forEach(checkCall);
    assert.equal(new Set(calls.map((c) => c.id)).size, calls.length);
    most = Math.max(most, calls.length);
  }
  assert.ok(most >= 2, "no seed gave parallel calls");
});

await t.check("tool_choice auto: either text or valid calls, never markers in content", async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "auto",
                                                     max_tokens: 60, seed });
    const ch = r.choices[0];
    if (ch.message.tool_calls && ch.message.tool_calls.length) {
      assert.equal(ch.finish_reason, "tool_calls");
      ch.message.tool_calls.forEach(checkCall);
    } else {
      assert.ok(["stop", "length"].includes(ch.finish_reason));
    }
    assert.ok(!/tool▁(call|output|sep)/.test(ch.message.content || ""), ch.message.content);
  }
});

await t.check("tool_choice none with tools: no tool calls", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "none", max_tokens: 30, seed: 1 });
  assert.ok(!r.choices[0].message.tool_calls || r.choices[0].message.tool_calls.length === 0);
  assert.notEqual(r.choices[0].finish_reason, "tool_calls");
  assert.ok(!/tool▁(call|output|sep)/.test(r.choices[0].message.content), r.choices[0].message.content);
});

await t.check("streaming: tool-call deltas in the OpenAI chunk shape, assembled by index", async () => {
  const stream = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "required",
                                                        max_tokens: 450, temperature: 1.5, seed: 3, stream: true });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) {
      for (const d of ch.delta.tool_calls || []) {
        assert.equal(typeof d.index, "number");
        if (!calls[d.index]) calls[d.index] = { id: d.id, type: d.type, function: { name: "", arguments: "" } };
        if (d.function?.name) calls[d.index].function.name += d.function.name;
        if (d.function?.arguments) calls[d.index].function.arguments += d.function.arguments;
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(finish, "tool_calls");
  assert.ok(calls.length >= 1);
  for (let i = 0; i < calls.length; ++i) assert.ok(calls[i], "missing index " + i);
  calls.forEach(checkCall);
});

await t.check("role: tool replies in the history are accepted and answered", async () => {
  const first = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "required",
                                                       parallel_tool_calls: false, max_tokens: 400, seed: 2 });
  const call = first.choices[0].message.tool_calls[0];
  const r = await client.chat.completions.create({
    model: "deepseek-chat", tools, tool_choice: "none", max_tokens: 20, seed: 2,
    messages: [...ask, { role: "assistant", content: null, tool_calls: [call] },
               { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temperature: 21 }) }],
  });
  assert.equal(typeof r.choices[0].message.content, "string");
  const base = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, tools, tool_choice: "none", max_tokens: 1 });
  assert.ok(r.usage.prompt_tokens > base.usage.prompt_tokens + 5, "the call and its result are in the prompt");
});

await t.check("response_format json_schema: outputs valid for the schema (ajv)", async () => {
  const schema = {
    type: "object",
    properties: {
      name: { type: "string" },
      age: { type: "integer" },
      tags: { type: "array", items: { type: "string", enum: ["a", "b", "c"] }, maxItems: 3 },
      address: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
    },
    required: ["name", "age", "tags", "address"],
    additionalProperties: false,
  };
  const v = ajv.compile(schema);
  for (const seed of [1, 2, 3, 4, 5]) {
    const r = await client.chat.completions.create({
      model: "deepseek-chat", messages: [{ role: "user", content: "A person, please." }], max_tokens: 300, temperature: 1, seed,
      response_format: { type: "json_schema", json_schema: { name: "person", schema, strict: true } },
    });
    const text = r.choices[0].message.content;
    assert.equal(r.choices[0].finish_reason, "stop", text);
    const value = JSON.parse(text);
    assert.ok(v(value), text + " " + JSON.stringify(v.errors));
  }
});

await t.check("response_format json_schema on deepseek-reasoner: content (after reasoning) matches", async () => {
  const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
  const v = ajv.compile(schema);
  const r = await client.chat.completions.create({
    model: "deepseek-reasoner", messages: [{ role: "user", content: "ok?" }], max_tokens: 200, seed: 1,
    response_format: { type: "json_schema", json_schema: { name: "ok", schema } },
  });
  const value = JSON.parse(r.choices[0].message.content);
  assert.ok(v(value), r.choices[0].message.content);
});

// Hostile or invalid definitions: a 400 OpenAI error naming the parameter, before any generation.
async function expect400(body, re) {
  const res = await fetch(server.url + "/v1/chat/completions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "deepseek-chat", messages: ask, max_tokens: 50, ...body }),
  });
  const j = await res.json();
  assert.equal(res.status, 400, JSON.stringify(j));
  assert.equal(j.error.type, "invalid_request_error");
  assert.match(j.error.message, re);
}
const fn = (name, parameters, extra = {}) => ({ type: "function", function: { name, parameters, ...extra } });

await t.check("hostile tools: invalid schema, 200 tools, huge description, recursive $ref, bad names -> 400", async () => {
  await expect400({ tools: [fn("x", { type: "object", properties: { a: { type: 7 } } })] }, /type/);
  await expect400({ tools: Array.from({ length: 200 }, (_, i) => fn("t" + i, { type: "object" })) }, /128|tools/);
  await expect400({ tools: [fn("x", { type: "object" }, { description: "d".repeat(100000) })] }, /description/);
  await expect400({ tools: [fn("x", { $ref: "#/$defs/n", $defs: { n: { type: "object", properties: { next: { $ref: "#/$defs/n" } } } } })] },
                  /recursive|\$ref/i);
  await expect400({ tools: [fn("bad name!", { type: "object" })] }, /name/);
  await expect400({ tools: [fn("x", { type: "object" }), fn("x", { type: "object" })] }, /twice|duplicate/i);
  await expect400({ tools: [fn("x", { type: "object", properties: { n: { type: "integer", minimum: 3 } } }, { strict: true })] }, /minimum/);
  await expect400({ tools: [fn("x", { type: "object" })], tool_choice: { type: "function", function: { name: "y" } } }, /not among/);
  await expect400({ tools: [fn("x", { type: "object" })], tool_choice: "sometimes" }, /tool_choice/);
  await expect400({ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "nonsense" } } } }, /schema/);
  await expect400({ response_format: { type: "json_schema", json_schema: { name: "x" } } }, /schema/);
  await expect400({ tools: [fn("x", { type: "object", properties: { a: { type: "string" } }, required: ["a"] })], tool_choice: "required",
                    max_tokens: 2 }, /max_tokens/);
});

await t.check("the server still answers after the hostile requests", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: ask, max_tokens: 4 });
  assert.equal(r.object, "chat.completion");
});

await stopServer(server);
t.done();
