// One ~2k-token prompt against a running `baleine serve`: prints {"ttft", "prompt_tokens", "hit_tokens"} as JSON
// (ttft: until the first chunk with text, which the role-only opening chunk is not).
// Usage: node bench/bench_disk_cache.mjs URL MODEL_ID QUESTION
const [url, model, question] = process.argv.slice(2);
const prefix = "Permission is granted to copy, distribute and modify this document under the terms of the licence. ".repeat(72);
await (await fetch(url + "/v1/models")).text();  // warm the HTTP client and the connection: time the server only
const t0 = performance.now();
const r = await fetch(url + "/v1/chat/completions", {
  method: "POST", headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true }, max_tokens: 1,
                         messages: [{ role: "system", content: prefix }, { role: "user", content: question }] }),
});
if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
const reader = r.body.getReader();
const dec = new TextDecoder();
let buf = "", ttft = null, usage = null;
for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  buf += dec.decode(value, { stream: true });
  let cut;
  while ((cut = buf.indexOf("\n\n")) >= 0) {
    const line = buf.slice(0, cut);
    buf = buf.slice(cut + 2);
    if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
    const c = JSON.parse(line.slice(6));
    if (c.usage) usage = c.usage;
    const d = c.choices?.[0]?.delta;
    if (ttft === null && d && (d.content || d.reasoning_content)) ttft = (performance.now() - t0) / 1000;
  }
}
// With max_tokens 1 the whole request is the prefill and one token; its one token may be empty text (a special
// token), then the end of the request is the first token's time.
ttft ??= (performance.now() - t0) / 1000;
console.log(JSON.stringify({ ttft, prompt_tokens: usage.prompt_tokens, hit_tokens: usage.prompt_cache_hit_tokens }));
