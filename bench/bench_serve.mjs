// Serving benchmark against a running `baleine serve`: aggregate decode throughput at 1, 2, 4, 8, 16 concurrent
// streams, and time to first token for a ~2k-token prompt, cold and with the same 2k-token prefix sent again
// (what the engine's prefix cache serves; usage.prompt_cache_hit_tokens says whether it did).
// Usage: node bench/bench_serve.mjs URL MODEL_ID [TOKENS_PER_STREAM]
import { streamChat } from "./sse.mjs";

const [url, model, perStreamArg] = process.argv.slice(2);
const perStream = Number(perStreamArg || 128);

const stream = (body) => streamChat(url, { model, ...body });

const question = (i) => [{ role: "user", content: `Stream ${i}: summarise the licence terms about copies and distribution.` }];
console.log("| concurrent streams | tokens | wall s | aggregate tok/s | per-stream tok/s | mean TTFT s |");
console.log("|---:|---:|---:|---:|---:|---:|");
let base = null;
for (const n of [1, 2, 4, 8, 16]) {
  await stream({ messages: question(0), max_tokens: 4, ignore_eos: true });  // warm
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => stream({ messages: question(i), max_tokens: perStream, ignore_eos: true, temperature: 0 })));
  const wall = (performance.now() - t0) / 1000;
  const tokens = rs.reduce((s, r) => s + r.usage.completion_tokens, 0);
  const agg = tokens / wall;
  base ??= agg;
  const ttft = rs.reduce((s, r) => s + r.ttft, 0) / n;
  console.log(`| ${n} | ${tokens} | ${wall.toFixed(2)} | ${agg.toFixed(1)} (${(agg / base).toFixed(2)}x) | ${(agg / n).toFixed(1)} | ${ttft.toFixed(3)} |`);
}

// ~2k-token shared prefix (licence-like text), then two different questions.
const prefix = "Permission is granted to copy, distribute and modify this document under the terms of the licence. ".repeat(72);
const ask = (q) => [{ role: "system", content: prefix }, { role: "user", content: q }];
const cold = await stream({ messages: ask("First question: what may I copy?"), max_tokens: 1 });
const warm = await stream({ messages: ask("Second question: what must I keep?"), max_tokens: 1 });
console.log("");
console.log("| first token, ~2k-token prompt | prompt tokens | cache hit tokens | TTFT s |");
console.log("|---|---:|---:|---:|");
console.log(`| cold | ${cold.usage.prompt_tokens} | ${cold.usage.prompt_cache_hit_tokens} | ${cold.ttft.toFixed(3)} |`);
console.log(`| same 2k prefix again | ${warm.usage.prompt_tokens} | ${warm.usage.prompt_cache_hit_tokens} | ${warm.ttft.toFixed(3)} (${(cold.ttft / warm.ttft).toFixed(2)}x) |`);
