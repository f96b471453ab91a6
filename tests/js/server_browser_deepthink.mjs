// The web chat's DeepThink switch and intro note in Debian's chromium (playwright-core), on the tiny test model
// served with the hybrid (V3.1) template (thinking: toggle) and, for the other capabilities, under the names that
// always or never think: the switch's state per model, the request it sends (thinking / reasoning_effort on
// /v1/chat/completions), an answer without a thinking section when it is off and with one when it is on, and the
// intro note of an empty conversation (the model, its format, context and capabilities; example prompts).
// Usage: node server_browser_deepthink.mjs BALEINE_BINARY MODEL_DIR WORK_DIR
import assert from "node:assert/strict";
import fs from "node:fs";
import { harness, launchChromium, startServer, stopServer } from "./server_util.mjs";

const [bin, model, work] = process.argv.slice(2);
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(`${work}/profile`, { recursive: true });
const server = await startServer(bin, model, `${work}/server.db`, ["--chat-format", "deepseek-v3.1"]);
const t = harness();
const context = await launchChromium(`${work}/profile`);
const page = context.pages()[0] ?? (await context.newPage());
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
const chatBodies = [];
page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) chatBodies.push(JSON.parse(r.postData())); });

// A prompt whose thinking answer (greedy is not available in thinking mode; any sample) reasons visibly.
const prompt = "Tell me about this License.";

await t.check("the intro note says what the model is and its example prompts fill the input", async () => {
  await page.goto(server.url + "/");
  await page.waitForSelector("#model option", { state: "attached" });
  await page.selectOption("#model", "deepseek-flash");
  const intro = await page.textContent("#messages .intro");
  const cfg = await (await fetch(server.url + "/api/config")).json();
  assert.ok(intro.includes("deepseek-flash") && intro.includes("deepseek-v3.1") && intro.includes(String(cfg.context)), intro);
  assert.match(intro, /thinks on request/);
  assert.match(intro, /text only/);
  const examples = await page.$$("#messages .intro .examples button");
  assert.ok(examples.length >= 2);
  const text = await examples[0].textContent();
  await examples[0].click();
  assert.equal(await page.inputValue("#input"), text);
  await page.selectOption("#model", "deepseek-chat");
  assert.match(await page.textContent("#messages .intro"), /off by default/);
});

await t.check("DeepThink: a switch for toggle models, starting at the model's default", async () => {
  await page.selectOption("#model", "deepseek-flash");
  assert.equal(await page.isVisible("#deepthink"), true);
  assert.equal(await page.isChecked("#deepthink-on"), true);
  assert.equal(await page.isDisabled("#deepthink-on"), false);
  await page.selectOption("#model", "deepseek-chat");
  assert.equal(await page.isChecked("#deepthink-on"), false);
  assert.equal(await page.isDisabled("#effort"), true);
});

await t.check("DeepThink off: the request carries thinking disabled and the answer has no thinking section", async () => {
  await page.selectOption("#model", "deepseek-flash");
  await page.uncheck("#deepthink-on");
  await page.fill("#input", prompt);
  await page.click("#send");
  await page.waitForSelector(".message.assistant");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const body = chatBodies.at(-1);
  assert.deepEqual(body.thinking, { type: "disabled" });
  assert.equal(body.reasoning_effort, undefined);
  assert.equal(await page.$(".message.assistant details.thinking"), null);
  assert.ok((await page.textContent(".message.assistant .usage")).length > 0);
});

await t.check("DeepThink on with effort low: the request says so and the answer shows its thinking", async () => {
  await page.click("#new-chat");
  await page.selectOption("#model", "deepseek-flash");
  await page.check("#deepthink-on");
  await page.selectOption("#effort", "low");
  await page.fill("#input", prompt);
  await page.click("#send");
  await page.waitForSelector("body:not([data-busy])", { timeout: 60000 });
  const body = chatBodies.at(-1);
  assert.deepEqual(body.thinking, { type: "enabled" });
  assert.equal(body.reasoning_effort, "low");
  await page.waitForSelector(".message.assistant details.thinking");
  assert.ok((await page.textContent(".message.assistant details.thinking .reasoning")).length > 0);
});

await context.close();
await stopServer(server);

// The other capabilities, on a server with the R1-less default template: deepseek-reasoner always thinks (switch
// checked and locked), the model's own name never does (no switch, no thinking fields sent).
const plain = await startServer(bin, model, `${work}/plain.db`);
const context2 = await launchChromium(`${work}/profile2`);
const page2 = context2.pages()[0] ?? (await context2.newPage());
page2.on("pageerror", (e) => pageErrors.push(String(e)));
await t.check("DeepThink is checked and disabled for always, hidden for never", async () => {
  await page2.goto(plain.url + "/");
  await page2.waitForSelector("#model option", { state: "attached" });
  await page2.selectOption("#model", "deepseek-reasoner");
  assert.equal(await page2.isVisible("#deepthink"), true);
  assert.equal(await page2.isChecked("#deepthink-on"), true);
  assert.equal(await page2.isDisabled("#deepthink-on"), true);
  assert.match(await page2.textContent("#messages .intro"), /always thinks/);
  await page2.selectOption("#model", "deepseek-chat");
  assert.equal(await page2.isVisible("#deepthink"), false);
  assert.match(await page2.textContent("#messages .intro"), /without a thinking phase/);
  assert.deepEqual(pageErrors, []);
});
await context2.close();
await stopServer(plain);
t.done();
