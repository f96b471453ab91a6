// The web chat in Debian's chromium driven by playwright-core: send a message, watch the answer stream, open the
// reasoning of a deepseek-reasoner answer, reload and find the conversation; at phone width too.
// Usage: node server_browser.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { harness, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(`${work}/profile`, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`);
const t = harness();
const context = await chromium.launchPersistentContext(`${work}/profile`, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? (await context.newPage());
const external = [];
page.on("request", (r) => { if (!r.url().startsWith(server.url)) external.push(r.url()); });
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));

await t.check("the page loads offline from the binary", async () => {
  await page.goto(server.url + "/");
  await page.waitForSelector("#model option");
  const models = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  assert.ok(models.includes("deepseek-reasoner") && models.includes("deepseek-chat"), models.join(","));
  assert.deepEqual(external, []);
});

await t.check("send a message and watch the answer stream", async () => {
  await page.selectOption("#model", "deepseek-chat");
  await page.fill("#input", "What does this License allow?");
  await page.click("#send");
  await page.waitForSelector(".message.user");
  // While streaming, the stop button shows and the assistant message grows.
  await page.waitForSelector(".message.assistant.streaming", { timeout: 20000 });
  await page.waitForSelector("#send:not([hidden])", { timeout: 60000 });
  const meta = await page.textContent(".message.assistant .usage");
  assert.match(meta, /completion tokens/);
  assert.match(meta, /\$0\.\d+/);
});

await t.check("a reasoner answer has a collapsible thinking section with its duration", async () => {
  await page.click("#new-chat");
  await page.selectOption("#model", "deepseek-reasoner");
  await page.fill("#input", "Think about copies of the License.");
  await page.click("#send");
  await page.waitForSelector("#send:not([hidden])", { timeout: 60000 });
  const details = await page.waitForSelector(".message.assistant details.thinking");
  assert.equal(await details.evaluate((d) => d.open), false);
  await page.click(".message.assistant details.thinking summary");
  assert.equal(await details.evaluate((d) => d.open), true);
  const reasoning = await page.textContent(".message.assistant details.thinking .reasoning");
  assert.ok(reasoning.length > 0);
  assert.match(await page.textContent(".message.assistant details.thinking summary"), /Thought for \d+\.\d s/);
});

await t.check("reload: both conversations are listed and the messages come back", async () => {
  await page.reload();
  await page.waitForSelector("#conversations li");
  const titles = await page.$$eval("#conversations li a", (as) => as.map((a) => a.textContent));
  assert.ok(titles.some((x) => x.startsWith("What does this License")), titles.join("|"));
  assert.ok(titles.some((x) => x.startsWith("Think about copies")), titles.join("|"));
  await page.click("#conversations li a >> text=What does this License allow?");
  await page.waitForSelector(".message.assistant");
  assert.equal(await page.textContent(".message.user .bubble"), "What does this License allow?");
});

await t.check("stop and regenerate", async () => {
  await page.fill("#input", "Write a very long story.");
  await page.click("#send");
  await page.waitForSelector("#stop:not([hidden])");
  await page.click("#stop");
  await page.waitForSelector("#send:not([hidden])");
  const before = (await page.$$(".message.assistant")).length;
  await page.click(".message.assistant:last-child .regenerate");
  await page.waitForSelector("#send:not([hidden])", { timeout: 60000 });
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
