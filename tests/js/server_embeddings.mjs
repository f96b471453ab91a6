// /v1/embeddings through the official `openai` SDK against `baleine serve` on the tiny fixture model: the OpenAI
// shape (string, array, token ids), L2-normalised vectors, determinism, batch = singles, token ids = the text,
// base64 = float, dimensions (truncated and renormalised), usage, and OpenAI errors for bad input.
// Usage: node server_embeddings.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
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
const hidden = JSON.parse(fs.readFileSync(`${model}/config.json`, "utf8")).hidden_size;
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
const texts = ["The lighthouse was lit in 1863.", "Gardens need water in summer.", "A third, longer sentence about the sea and the wind and the rocks."];

let singles = [];
await t.check("one string: shape, usage, unit norm, same input -> same vector", async () => {
  for (const s of texts) {
    const r = await client.embeddings.create({ model: "deepseek-chat", input: s, encoding_format: "float" });
    assert.equal(r.object, "list");
    assert.equal(r.data.length, 1);
    assert.equal(r.data[0].object, "embedding");
    assert.equal(r.data[0].index, 0);
    assert.equal(r.data[0].embedding.length, hidden);
    assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-5, "norm " + norm(r.data[0].embedding));
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens);
    singles.push(r.data[0].embedding);
  }
  const again = await client.embeddings.create({ model: "deepseek-chat", input: texts[0], encoding_format: "float" });
  assert.ok(maxDiff(again.data[0].embedding, singles[0]) < 1e-6);
  assert.ok(maxDiff(singles[0], singles[1]) > 1e-3, "different texts, different vectors");
});

await t.check("a batch equals the singles (while a generation runs next to it)", async () => {
  const gen = client.chat.completions.create({ model: "deepseek-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 24, temperature: 0 });
  const r = await client.embeddings.create({ model: "deepseek-chat", input: texts, encoding_format: "float" });
  await gen;
  assert.equal(r.data.length, texts.length);
  let tokens = 0;
  r.data.forEach((d, i) => {
    assert.equal(d.index, i);
    assert.ok(maxDiff(d.embedding, singles[i]) < 1e-5, `input ${i}: ${maxDiff(d.embedding, singles[i])}`);
  });
  for (const s of texts) tokens += (await (await fetch(server.url + "/tokenize", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: s }) })).json()).count;
  assert.equal(r.usage.prompt_tokens, tokens);
});

await t.check("token ids give the text's vector; base64 (SDK default) decodes to the floats", async () => {
  const ids = (await (await fetch(server.url + "/tokenize", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: texts[1] }) })).json()).tokens;
  const r = await client.embeddings.create({ model: "deepseek-chat", input: [ids], encoding_format: "float" });
  assert.ok(maxDiff(r.data[0].embedding, singles[1]) < 1e-6);
  const one = await client.embeddings.create({ model: "deepseek-chat", input: ids, encoding_format: "float" });
  assert.ok(maxDiff(one.data[0].embedding, singles[1]) < 1e-6);
  // Without encoding_format the SDK asks for base64 and decodes it itself.
  const b = await client.embeddings.create({ model: "deepseek-chat", input: texts[1] });
  assert.equal(b.data[0].embedding.length, hidden);
  assert.ok(maxDiff(b.data[0].embedding, singles[1]) < 1e-6);
  const raw = await (await fetch(server.url + "/v1/embeddings", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "deepseek-chat", input: texts[1], encoding_format: "base64" }) })).json();
  assert.equal(typeof raw.data[0].embedding, "string");
  const f = new Float32Array(new Uint8Array(Buffer.from(raw.data[0].embedding, "base64")).buffer);
  assert.ok(maxDiff(Array.from(f), singles[1]) < 1e-6);
});

await t.check("dimensions: the first n components, renormalised; out of range refused", async () => {
  const r = await client.embeddings.create({ model: "deepseek-chat", input: texts[0], dimensions: 8, encoding_format: "float" });
  assert.equal(r.data[0].embedding.length, 8);
  assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-5);
  const n8 = norm(singles[0].slice(0, 8));
  assert.ok(maxDiff(r.data[0].embedding, singles[0].slice(0, 8).map((x) => x / n8)) < 1e-5);
  await assert.rejects(client.embeddings.create({ model: "deepseek-chat", input: "x", dimensions: hidden + 1 }),
                       (e) => e.status === 400 && e.param === "dimensions");
  await assert.rejects(client.embeddings.create({ model: "deepseek-chat", input: "x", dimensions: 0 }), (e) => e.status === 400);
});

await t.check("bad input: OpenAI errors (400/404), the server keeps serving", async () => {
  const bad = [
    [{ model: "deepseek-chat", input: "" }, 400, "input"],
    [{ model: "deepseek-chat", input: [] }, 400, "input"],
    [{ model: "deepseek-chat", input: [[]] }, 400, "input"],
    [{ model: "deepseek-chat", input: [1, -3] }, 400, "input"],
    [{ model: "deepseek-chat", input: [[1, 2], [999999]] }, 400, "input"],
    [{ model: "deepseek-chat", input: [{ text: "x" }] }, 400, "input"],
    [{ model: "deepseek-chat", input: 5 }, 400, "input"],
    [{ model: "deepseek-chat", input: Array(2049).fill("a") }, 400, "input"],
    [{ model: "deepseek-chat", input: "a ".repeat(5000) }, 400, "input"],   // longer than the context
    [{ model: "deepseek-chat", input: "x", encoding_format: "int8" }, 400, "encoding_format"],
    [{ model: "no-such-model", input: "x" }, 404, "model"],
    [{ input: "x" }, 400, "model"],
  ];
  for (const [body, status, param] of bad) {
    const r = await fetch(server.url + "/v1/embeddings", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const j = await r.json();
    assert.equal(r.status, status, JSON.stringify(body).slice(0, 80) + " -> " + JSON.stringify(j));
    assert.equal(typeof j.error.message, "string");
    assert.equal(j.error.param, param, JSON.stringify(j));
  }
  const ok = await client.embeddings.create({ model: "deepseek-chat", input: "still fine", encoding_format: "float" });
  assert.equal(ok.data[0].embedding.length, hidden);
});

await stopServer(server);
t.done();
