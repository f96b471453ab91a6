// POST /v1/images/generations through the official `openai` SDK against `baleine serve --image-model` on the tiny
// Janus fixture (tests/data/parity/janus, 16x16 pictures): the OpenAI images shape, n pictures as PNGs, b64_json
// and url, seeds (same seed = same pictures), usage, and OpenAI errors for bad input.
// Usage: node server_images.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
const janus = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "data", "parity", "janus");
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--image-model", janus, "--max-images", "3"]);
const client = new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 });
const t = harness();

// PNG: 8-byte signature, then the IHDR chunk with width and height (big-endian) at bytes 16..23.
function pngSize(buf) {
  assert.deepEqual([...buf.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; ++k) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

let first;
await t.check("n pictures as base64 PNGs of the model's size, with usage", async () => {
  const r = await client.images.generate({ model: "janus-pro", prompt: "a red circle on a white background", n: 2, size: "16x16", response_format: "b64_json", seed: 3 });
  assert.ok(r.created > 1.6e9);
  assert.equal(r.data.length, 2);
  for (const d of r.data) assert.deepEqual(pngSize(Buffer.from(d.b64_json, "base64")), [16, 16]);
  assert.ok(r.usage.input_tokens > 5, JSON.stringify(r.usage));
  assert.equal(r.usage.output_tokens, 2 * 16);
  first = r.data.map((d) => d.b64_json);
  fs.writeFileSync(`${work}/first.png`, Buffer.from(first[0], "base64"));
});

await t.check("the same seed draws the same pictures; another seed others", async () => {
  const again = await client.images.generate({ prompt: "a red circle on a white background", n: 2, seed: 3 });
  assert.deepEqual(again.data.map((d) => d.b64_json), first);
  const other = await client.images.generate({ prompt: "a red circle on a white background", n: 2, seed: 4 });
  assert.notDeepEqual(other.data.map((d) => d.b64_json), first);
});

await t.check("response_format url gives data URLs of the same PNG", async () => {
  const r = await client.images.generate({ prompt: "a red circle on a white background", n: 1, seed: 3, response_format: "url" });
  assert.ok(r.data[0].url.startsWith("data:image/png;base64,"));
  assert.equal(r.data[0].url.slice("data:image/png;base64,".length), first[0]);
});

await t.check("bad requests get OpenAI errors", async () => {
  const bad = async (body, status, param) => {
    try {
      await client.images.generate(body);
      assert.fail("no error for " + JSON.stringify(body));
    } catch (e) {
      assert.equal(e.status, status, JSON.stringify(body) + " -> " + e.status + " " + e.message);
      if (param) assert.equal(e.param, param, e.message);
    }
  };
  await bad({ prompt: "x", size: "1024x1024" }, 400, "size");
  await bad({ prompt: "x", n: 4 }, 400, "n");  // --max-images 3
  await bad({ prompt: "x", n: 0 }, 400, "n");
  await bad({ prompt: "" }, 400, "prompt");
  await bad({ prompt: "x", response_format: "jpeg" }, 400, "response_format");
  await bad({ prompt: "x", model: "dall-e-3" }, 404, "model");
  await bad({ prompt: "x", seed: -1 }, 400, "seed");
  await bad({ prompt: "word ".repeat(400) }, 400, "prompt");  // prompt + 16 image tokens exceed the 256 context
  const raw = await fetch(server.url + "/v1/images/generations", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{not json" });
  assert.equal(raw.status, 400);
  assert.ok((await raw.json()).error.message);
});

const picture = fs.readFileSync(path.join(janus, "picture.png")).toString("base64");
const ask = (content, extra = {}) => client.chat.completions.create({ model: "janus-pro", messages: [{ role: "user", content }], max_tokens: 6, temperature: 0, ...extra });
await t.check("chat about a picture (image_url data URL) answers as `baleine generate --image` does", async () => {
  const r = await ask([{ type: "text", text: "What is in this picture?" }, { type: "image_url", image_url: { url: "data:image/png;base64," + picture } }]);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, "janus-pro");
  const { execFileSync } = await import("node:child_process");
  const cli = execFileSync(bin, ["generate", "--model", janus, "--image", path.join(janus, "picture.png"), "--prompt", "What is in this picture?", "--max-tokens", "6"]).toString();
  assert.equal(r.choices[0].message.content + "\n", cli);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 16 + 2, JSON.stringify(r.usage));  // 16 placeholders + the two image tags + text
  const s = await ask([{ type: "text", text: "What is in this picture?" }, { type: "image_url", image_url: { url: "data:image/png;base64," + picture } }], { stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.delta?.content ?? "";
  assert.equal(text, r.choices[0].message.content);
});

await t.check("bad pictures get 400s naming the part", async () => {
  const bad = async (content, param, re) => {
    try {
      await ask(content);
      assert.fail("no error for " + JSON.stringify(content).slice(0, 200));
    } catch (e) {
      assert.equal(e.status, 400, e.message);
      assert.equal(e.param, param, e.message);
      if (re) assert.match(e.message, re);
    }
  };
  await bad([{ type: "image_url", image_url: { url: "https://example.com/a.png" } }], "messages[0].content[0].image_url", /does not fetch/);
  await bad([{ type: "image_url", image_url: { url: "data:image/png;base64,!!!!" } }], "messages[0].content[0].image_url", /malformed/);
  const corrupt = Buffer.from(picture, "base64").subarray(0, 60).toString("base64");
  await bad([{ type: "image_url", image_url: { url: "data:image/png;base64," + corrupt } }], "messages[0].content[0].image_url");
  // A 10000 x 5000 PNG header (50 megapixels): refused before any pixel is decoded.
  const big = Buffer.from(picture, "base64");
  big.writeUInt32BE(10000, 16);
  big.writeUInt32BE(5000, 20);
  big.writeUInt32BE(crc32(big.subarray(12, 29)), 29);  // a valid IHDR: the size guard, not the CRC, must refuse it
  await bad([{ type: "image_url", image_url: { url: "data:image/png;base64," + big.toString("base64") } }], "messages[0].content[0].image_url", /too large|large/);
  const four = Array(4).fill({ type: "image_url", image_url: { url: "data:image/png;base64," + picture } });
  await bad(four, "messages[0].content[3]", /at most 3/);  // --max-images 3
  await bad([{ type: "input_audio", input_audio: {} }], "messages[0].content[0]");
});

await t.check("chat still works next to the image model", async () => {
  const r = await client.chat.completions.create({ model: "deepseek-chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 });
  assert.ok(r.choices[0].message.content !== undefined);
});

await stopServer(server);
t.done();
