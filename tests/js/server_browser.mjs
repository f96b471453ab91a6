// The web chat in Debian's chromium driven by playwright-core: send a message, watch the answer stream, open the
// reasoning of a deepseek-reasoner answer, reload and find the conversation; at phone width too.
// Usage: node server_browser.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import { harness, launchChromium, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(`${work}/profile`, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`);
const t = harness();
const context = await launchChromium(`${work}/profile`);
const page = context.pages()[0] ?? (await context.newPage());
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(server.url)) external.push(r.url()); });
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));

// The model is random: find prompts whose greedy answer (temperature 0, as set in the UI below) runs long enough
// to be watched while it streams and stopped, asking the API exactly what the page will send.
async function longPrompt(model, tokens) {
  for (let i = 0; i < 40; i++) {
    const content = `Tell me about License number ${i}.`;
    const r = await fetch(server.url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({
      model, messages: [{ role: "user", content }], temperature: 0, max_tokens: tokens }) });
    const c = (await r.json()).choices[0];
    if (c.finish_reason === "length" && (model !== "deepseek-reasoner" || c.message.reasoning_content.length > 0)) return content;
  }
  throw new Error("no prompt gives a long answer");
}
const chatPrompt = await longPrompt("deepseek-chat", 120);
const reasonerPrompt = await longPrompt("deepseek-reasoner", 60);

// Lengths of the last answer's text each time the page changes it, to see it grow while streaming.
async function watchLastAnswer() {
  await page.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const all = document.querySelectorAll(".message.assistant");
      const last = all[all.length - 1];
      if (last) window.__lengths.push(last.textContent.length);
    }).observe(document.querySelector("#messages"), { childList: true, subtree: true, characterData: true });
  });
}

await t.check("the page loads offline from the binary", async () => {
  await page.goto(server.url + "/");
  await page.waitForSelector("#model option", { state: "attached" });
  await page.click("#toggle-settings");
  await page.$eval("#temperature", (e) => { e.value = "0"; e.dispatchEvent(new Event("input")); });
  assert.equal(await page.textContent("#temperature-value"), "0");
  const models = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  assert.ok(models.includes("deepseek-reasoner") && models.includes("deepseek-chat"), models.join(","));
  assert.deepEqual(external, []);
});

await t.check("send a message and watch the answer stream", async () => {
  await page.selectOption("#model", "deepseek-chat");
  await watchLastAnswer();
  await page.fill("#input", chatPrompt);
  await page.click("#send");
  await page.waitForSelector(".message.user");
  // While streaming, the stop button shows and the assistant message grows.
  await page.waitForSelector(".message.assistant.streaming", { timeout: 20000 });
  await page.waitForSelector("#stop:not([hidden])");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const lengths = new Set(await page.evaluate(() => window.__lengths.filter((n) => n > 0)));
  assert.ok(lengths.size >= 5, "the answer did not grow in steps: " + [...lengths].join(","));
  const meta = await page.textContent(".message.assistant .usage");
  assert.match(meta, /completion tokens/);
  assert.match(meta, /\$0\.\d+/);
});

await t.check("a reasoner answer has a collapsible thinking section with its duration", async () => {
  await page.click("#new-chat");
  await page.selectOption("#model", "deepseek-reasoner");
  await page.fill("#input", reasonerPrompt);
  await page.click("#send");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const open = () => page.$eval(".message.assistant details.thinking", (d) => d.open);
  assert.equal(await open(), false);
  await page.click(".message.assistant details.thinking summary");
  assert.equal(await open(), true);
  const reasoning = await page.textContent(".message.assistant details.thinking .reasoning");
  assert.ok(reasoning.length > 0);
  assert.match(await page.textContent(".message.assistant details.thinking summary"), /Thought for \d+\.\d s/);
});

await t.check("reload: both conversations are listed and the messages come back", async () => {
  await page.reload();
  await page.waitForSelector("#conversations li");
  const titles = await page.$$eval("#conversations li a", (as) => as.map((a) => a.textContent));
  assert.ok(titles.includes(chatPrompt) && titles.includes(reasonerPrompt), titles.join("|"));
  await page.click(`#conversations li a >> text=${chatPrompt}`);
  // The page may still show the conversation it reopened after the reload: wait for the clicked one to render.
  await page.waitForFunction((p) => document.querySelector(".message.user .bubble")?.textContent === p, chatPrompt,
                             { timeout: 10000 }).catch(() => {});
  await page.waitForSelector(".message.assistant");
  assert.equal(await page.textContent(".message.user .bubble"), chatPrompt);
});

await t.check("stop and regenerate", async () => {
  await page.click("#new-chat");
  await page.selectOption("#model", "deepseek-chat");
  await page.fill("#input", chatPrompt);
  await page.click("#send");
  await page.waitForSelector("#stop:not([hidden])");
  await page.click("#stop");
  await page.waitForSelector("body:not([data-busy])");
  await page.waitForSelector(".message.assistant .usage >> text=stopped");
  const before = (await page.$$(".message.assistant")).length;
  await page.click(".message.assistant:last-child .regenerate");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  assert.equal((await page.$$(".message.assistant")).length, before);
});

await t.check("markdown is rendered safely (no HTML from the model or the user)", async () => {
  const html = await page.evaluate(() => window.renderMarkdown("**b** <img src=x onerror=alert(1)> `<i>`\n```js\nlet a = '<b>';\n```"));
  assert.ok(html.includes("<strong>b</strong>"));
  assert.ok(!html.includes("<img") && html.includes("&lt;img"));
  assert.ok(html.includes("<pre><span class=\"code-lang\">js</span><code>let a = &#39;&lt;b&gt;&#39;;</code></pre>"), html);
});

await t.check("usable at phone width", async () => {
  await page.setViewportSize({ width: 375, height: 740 });
  await page.reload();
  await page.waitForSelector("#input");
  const box = await page.$eval("#composer", (e) => e.getBoundingClientRect().width);
  assert.ok(box <= 375);
  const sidebarHidden = await page.$eval("#sidebar", (e) => e.getBoundingClientRect().right <= 0);
  assert.ok(sidebarHidden);
  await page.click("#toggle-sidebar");
  await page.waitForFunction(() => document.querySelector("#sidebar").getBoundingClientRect().left >= 0);
  assert.deepEqual(pageErrors, []);
});

await context.close();
await stopServer(server);
t.done();
