// Streams one chat completion from `baleine serve` over SSE: {ttft (s until the first chunk with text; the
// role-only opening chunk is not), usage (from stream_options.include_usage), seconds (the whole request)}.
export async function streamChat(url, body) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ stream: true, stream_options: { include_usage: true }, ...body }),
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
  return { ttft, usage, seconds: (performance.now() - t0) / 1000 };
}
