// 32 parallel streams through the openai SDK: all complete, each with the same text as the same request alone
// (greedy decoding), usage in the last chunk, [DONE] at the end.
// Usage: node server_parallel.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--max-batch", "16", "--max-queue", "64"]);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const t = harness();
const prompts = Array.from({ length: 8 }, (_, i) => `Question ${i}: what does the License say about copies number ${i * 7}?`);
const request = (i) => ({ model: "model", messages: [{ role: "user", content: prompts[i % prompts.length] }], max_tokens: 24, temperature: 0 });

const alone = [];
for (let i = 0; i < prompts.length; i++) alone.push((await client.chat.completions.create(request(i))).choices[0].message.content);

await t.check("32 parallel streams complete with the text of the request alone", async () => {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: 32 }, async (_, i) => {
    const stream = await client.chat.completions.create({ ...request(i), stream: true, stream_options: { include_usage: true } });
    let text = "", usage = null, finish = null;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.delta.content ?? "";
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    return { i, text, usage, finish };
  }));
  const seconds = (performance.now() - t0) / 1000;
  let tokens = 0;
  for (const r of results) {
    assert.ok(r.finish === "stop" || r.finish === "length", `stream ${r.i}: finish ${r.finish}`);
    assert.ok(r.usage && r.usage.completion_tokens >= 1, `stream ${r.i}: usage`);
    assert.equal(r.text, alone[r.i % prompts.length], `stream ${r.i}: text differs from the request alone`);
    tokens += r.usage.completion_tokens;
  }
  console.log(`32 streams, ${tokens} tokens in ${seconds.toFixed(2)} s`);
});

await t.check("metrics saw batches of more than one sequence", async () => {
  const m = await (await fetch(server.url + "/metrics")).text();
  const mean = Number(m.match(/^baleine_batch_size_mean (\S+)/m)[1]);
  assert.ok(mean > 1, "mean batch " + mean);
});
await stopServer(server);
t.done();
