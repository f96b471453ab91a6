// One ~2k-token prompt against a running `baleine serve`: prints {"ttft", "prompt_tokens", "hit_tokens"} as JSON.
// Usage: node bench/bench_disk_cache.mjs URL MODEL_ID QUESTION
import { streamChat } from "./sse.mjs";

const [url, model, question] = process.argv.slice(2);
const prefix = "Permission is granted to copy, distribute and modify this document under the terms of the licence. ".repeat(72);
await (await fetch(url + "/v1/models")).text();  // warm the HTTP client and the connection: time the server only
const r = await streamChat(url, { model, max_tokens: 1,
                                  messages: [{ role: "system", content: prefix }, { role: "user", content: question }] });
// With max_tokens 1 the request is the prefill and one token; that token may be empty text (a special token),
// then the end of the request is the first token's time.
console.log(JSON.stringify({ ttft: r.ttft ?? r.seconds, prompt_tokens: r.usage.prompt_tokens, hit_tokens: r.usage.prompt_cache_hit_tokens }));
