// The open server on a laptop (no keys, loopback): what a hostile web page or a hostile client could do to it.
// Cross-site POSTs (text/plain, another Origin), DNS rebinding (a foreign Host), slow clients holding every
// connection, an announced 10^12-byte body, conflicting Content-Lengths, 60 concurrent 2 MB bodies (resident memory),
// /metrics behind keys, the web chat's security headers, and one default database for `keys` and `serve`.
// Usage: node server_guard.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const t = harness();
const msgs = [{ role: "user", content: "hello" }];
const server = await startServer(bin, model, `${work}/server.db`,
                                 ["--header-timeout", "2", "--body-timeout", "2", "--max-connections-per-client", "32"]);
const { hostname, port } = new URL(server.url);

// A request through node:http, which (unlike fetch) lets the test set Host and Origin and the source address.
function request(method, path, { headers = {}, body = null, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: hostname, port, method, path, headers, localAddress, agent: false }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    r.on("error", reject);
    if (body !== null) r.write(body);
    r.end();
  });
}
const json = { "Content-Type": "application/json" };
const chatBody = JSON.stringify({ model: "model", messages: msgs, max_tokens: 2 });
const conversations = async () => JSON.parse((await request("GET", "/api/conversations")).body).data.length;

// Raw bytes on a socket; resolves with what came back and how long the first byte took.
function raw(bytes, { keepOpenMs = 3000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let first = -1, data = "";
    const s = net.connect(Number(port), hostname, () => s.write(bytes));
    s.on("data", (d) => { if (first < 0) first = Date.now() - t0; data += d; });
    const done = () => resolve({ data, first });
    s.on("close", done);
    s.on("error", done);
    setTimeout(() => s.destroy(), keepOpenMs);
  });
}

await t.check("a cross-site text/plain POST (a CORS 'simple request') is refused with 415 and changes nothing", async () => {
  const before = await conversations();
  for (const [path, body] of [["/v1/chat/completions", chatBody], ["/api/conversations", JSON.stringify({ title: "csrf" })],
                              ["/v1/assistants", JSON.stringify({ name: "csrf" })]]) {
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
      const r = await request("POST", path, { headers: { "Content-Type": type }, body });
      assert.equal(r.status, 415, `${path} ${type}: ${r.status} ${r.body}`);
      const e = JSON.parse(r.body).error;
      assert.equal(e.code, "unsupported_media_type");
      assert.match(e.message, /application\/json/);
    }
  }
  assert.equal(await conversations(), before);
});
await t.check("a POST from another Origin is refused with 403; the page's own origin and no Origin (SDKs) pass", async () => {
  const before = await conversations();
  for (const origin of ["http://evil.example", "null", `http://127.0.0.1:${Number(port) + 1}`]) {
    const r = await request("POST", "/api/conversations", { headers: { ...json, Origin: origin }, body: JSON.stringify({ title: "x" }) });
    assert.equal(r.status, 403, origin);
    assert.equal(JSON.parse(r.body).error.code, "origin_not_allowed");
  }
  assert.equal(await conversations(), before);
  const own = await request("POST", "/v1/chat/completions", { headers: { ...json, Origin: server.url }, body: chatBody });
  assert.equal(own.status, 200, own.body);
  const sdk = await request("POST", "/v1/chat/completions", { headers: json, body: chatBody });
  assert.equal(sdk.status, 200, sdk.body);
});
await t.check("DNS rebinding: a foreign Host reads nothing (403); localhost names are answered", async () => {
  await request("POST", "/api/conversations", { headers: json, body: JSON.stringify({ title: "secret" }) });
  for (const host of [`evil.example:${port}`, "attacker.test", `rebind.127.0.0.1.nip.io:${port}`]) {
    const r = await request("GET", "/api/conversations", { headers: { Host: host } });
    assert.equal(r.status, 403, host + ": " + r.body);
    assert.ok(!r.body.includes("secret"));
    assert.equal(JSON.parse(r.body).error.code, "host_not_allowed");
  }
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, "[::1]", `app.localhost:${port}`]) {
    const r = await request("GET", "/api/conversations", { headers: { Host: host } });
    assert.equal(r.status, 200, host);
  }
});
await t.check("an announced 10^12-byte body gets its 413 at once", async () => {
  const r = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{"model":`);
  assert.match(r.data, /^HTTP\/1\.1 413/);
  assert.ok(r.first >= 0 && r.first < 1000, `first byte after ${r.first} ms`);
  assert.match(r.data, /request_too_large/);
});
await t.check("conflicting Content-Length headers, or one beside Transfer-Encoding, get 400", async () => {
  const body = chatBody;
  for (const framing of [`Content-Length: ${body.length}\r\nContent-Length: ${body.length + 5}`,
                         `Content-Length: ${body.length}\r\nTransfer-Encoding: chunked`, "Content-Length: 12abc",
                         "Content-Length: -1"]) {
    const r = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${framing}\r\n\r\n${body}`);
    assert.match(r.data, /^HTTP\/1\.1 400/, framing + " -> " + r.data.slice(0, 60));
    assert.match(r.data, /Connection: close/i);
  }
  // Two equal lengths are one length (RFC 9110 allows the repetition).
  const ok = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  assert.match(ok.data, /^HTTP\/1\.1 200/);
});
await t.check("70 connections sending half a body: /health answers within 1 s, the slow ones are cut at the deadline", async () => {
  const sockets = [];
  const closed = [];
  let refused = 0;
  for (let i = 0; i < 70; i++) {
    const s = net.connect(Number(port), hostname);
    sockets.push(s);
    closed.push(new Promise((res) => { s.on("close", () => res(Date.now())); s.on("error", () => {}); }));
    s.on("data", (d) => { if (/^HTTP\/1\.1 429/.test(String(d))) refused++; });
    s.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model":`);
  }
  await new Promise((res) => setTimeout(res, 300));
  const t0 = Date.now();
  for (const localAddress of ["127.0.0.2", "127.0.0.1"]) {
    const t1 = Date.now();
    const h = await request("GET", "/health", { localAddress });
    const ms = Date.now() - t1;
    assert.ok(ms < 1000, `/health from ${localAddress} took ${ms} ms`);
    // Another client is served; the attacking address itself is at its cap and told so at once.
    if (localAddress === "127.0.0.2") assert.equal(h.status, 200);
    else assert.ok(h.status === 200 || h.status === 429, String(h.status));
  }
  const ends = await Promise.all(closed);
  assert.ok(refused >= 70 - 32, `${refused} of 70 refused at the per-client cap of 32`);
  const last = Math.max(...ends) - t0;
  assert.ok(last < 6000, `the last slow connection was closed ${last} ms after the attack (body deadline 2 s)`);
});
await t.check("a client trickling its headers byte by byte is cut at the header deadline", async () => {
  const t0 = Date.now();
  const s = net.connect(Number(port), hostname);
  const head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + "a".repeat(100);
  let i = 0;
  const timer = setInterval(() => { if (i < head.length && !s.destroyed) s.write(head[i++]); }, 100);
  await new Promise((res) => { s.on("close", res); s.on("error", res); });
  clearInterval(timer);
  const ms = Date.now() - t0;
  assert.ok(ms < 4000, `closed after ${ms} ms (header deadline 2 s; the trickle alone would last ${head.length / 10} s)`);
});
await t.check("60 concurrent 2 MB bodies: all answered, resident memory within 400 MB of its start (16 MiB of bodies at once)", async () => {
  const rss = () => Number(fs.readFileSync(`/proc/${server.proc.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  const start = rss();
  let peak = start;
  const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 20);
  const body = JSON.stringify({ model: "model", messages: [{ role: "user", content: "the License ".repeat(170000) }] });
  assert.ok(body.length > 2_000_000);
  // From three client addresses, 20 each: within the per-client cap, so the body budget alone is under test.
  const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) =>
    request("POST", "/v1/chat/completions", { headers: json, body, localAddress: `127.0.0.${2 + (i % 3)}` })
      .then((r) => r.status, (e) => "error " + e.code)));
  clearInterval(sampler);
  // Each is over the context (400, as before); none is refused or cut off: later bodies wait for the budget.
  for (const s of statuses) assert.equal(s, 400);
  assert.ok(peak - start < 400, `resident memory ${start.toFixed(0)} MB -> peak ${peak.toFixed(0)} MB`);
  console.log(`  rss ${start.toFixed(0)} MB -> peak ${peak.toFixed(0)} MB`);
  assert.equal((await request("GET", "/health")).status, 200);
});
await t.check("the web chat is served with a CSP that forbids framing, and nosniff", async () => {
  const r = await request("GET", "/");
  assert.equal(r.status, 200);
  assert.match(r.headers["content-security-policy"], /frame-ancestors 'none'/);
  assert.match(r.headers["content-security-policy"], /default-src 'self'/);
  assert.equal(r.headers["x-frame-options"], "DENY");
  assert.equal(r.headers["x-content-type-options"], "nosniff");
});
await stopServer(server);

await t.check("`keys` and `serve` share one default database; /metrics is behind the keys", async () => {
  const env = { ...process.env, BALEINE_DB: undefined, XDG_DATA_HOME: `${work}/xdg`, HOME: `${work}/home` };
  delete env.BALEINE_DB;
  const secret = execFileSync(bin, ["keys", "create", "laptop"], { env, encoding: "utf8" }).trim();
  assert.ok(fs.existsSync(`${work}/xdg/baleine/baleine.db`));
  const { spawn } = await import("node:child_process");
  const proc = spawn(bin, ["serve", "--model", model, "--port", "0"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => { out += d; const m = out.match(/http:\/\/[\d.]+:(\d+)\//); if (m) resolve(m[0].replace(/\/$/, "")); });
    proc.on("exit", (c) => reject(new Error("exit " + c)));
  });
  try {
    const open = await fetch(url + "/v1/chat/completions", { method: "POST", headers: json, body: chatBody });
    assert.equal(open.status, 401);  // the key made by `keys create` (no --db) protects `serve` (no --db)
    assert.equal((await fetch(url + "/metrics")).status, 401);
    const m = await fetch(url + "/metrics", { headers: { Authorization: "Bearer " + secret } });
    assert.equal(m.status, 200);
    assert.match(await m.text(), /baleine_/);
  } finally {
    await stopServer({ proc });
  }
});
t.done();
