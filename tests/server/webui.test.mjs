// The chat page at / in headless Chromium (Debian's chromium, driven by playwright-core):
// a message streams back, the reasoning shows in a collapsible block, Stop ends an answer.
// Saves a screenshot to docs/webui.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { startServer, ROOT } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const skip = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

let srv, browser;
before(async () => {
  if (skip) return;
  srv = await startServer([], { ctx: 1024 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  if (browser) await browser.close();
  if (srv) assert.equal(await srv.stop(), 0);
});

test("the page streams an answer with a reasoning block, and Stop ends a long one", { skip }, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // The tiny fixture model answers faster than a person can press Stop: throttle the page's
  // network (~200 SSE chunks/s) so the stream is visibly incremental and still running.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions",
                 { offline: false, latency: 0, downloadThroughput: 50 * 1024, uploadThroughput: -1 });
  // Make the page's answers greedy (reproducible), and pick prompts whose greedy answers on
  // this random fixture are long enough to watch grow and to stop half-way.
  await page.route("**/v1/chat/completions", (route) => {
    const body = JSON.parse(route.request().postData());
    route.continue({ postData: JSON.stringify({ ...body, temperature: 0 }) });
  });
  const client = srv.client();
  const longPrompts = [];
  for (const p of ["Hello whale, what is 2+2?", "Now write a very long essay.", "Tell me a story.", "alpha", "bravo",
                   "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]) {
    const r = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: p }], temperature: 0 });
    if (r.usage.completion_tokens >= 200) longPrompts.push(p);
    if (longPrompts.length === 2) break;
  }
  assert.equal(longPrompts.length, 2, "two prompts with long greedy answers");
  await page.goto(srv.base + "/");
  assert.equal(await page.title(), "whale chat");
  await page.waitForFunction(() => document.getElementById("model").textContent.length > 0);

  // Watch the reasoning text grow over several animation frames: it must stream, not arrive
  // all at once at the end.
  await page.fill("#input", longPrompts[0]);
  await page.click("#send");
  const lengths = await page.evaluate(() => new Promise((resolve) => {
    const seen = [];
    const tick = () => {
      const box = document.querySelector(".msg.assistant details.reasoning div");
      seen.push(box ? box.textContent.length : 0);
      if (!document.getElementById("send").disabled && seen.length > 2) return resolve(seen);
      requestAnimationFrame(tick);
    };
    tick();
  }));
  const distinct = new Set(lengths.filter((n) => n > 0));
  assert.ok(distinct.size >= 2, `reasoning grew in steps: ${[...distinct].slice(0, 10)}`);
  const details = page.locator(".msg.assistant details.reasoning").first();
  assert.ok(await details.isVisible(), "reasoning block shown");
  assert.ok((await details.locator("div").textContent()).length > 0);
  assert.equal(await details.locator("summary").textContent(), "Reasoning");
  // Collapsible: clicking the summary toggles it.
  const wasOpen = await details.evaluate((d) => d.open);
  await details.locator("summary").click();
  assert.equal(await details.evaluate((d) => d.open), !wasOpen);
  if (!(await details.evaluate((d) => d.open))) await details.locator("summary").click();  // open for the screenshot
  fs.mkdirSync(path.join(ROOT, "docs"), { recursive: true });
  await page.screenshot({ path: path.join(ROOT, "docs", "webui.png") });

  // A second, long answer: Stop aborts it, the page is ready again, the server frees the slot.
  await page.fill("#input", longPrompts[1]);
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant")[1]
    ?.querySelector("details.reasoning div")?.textContent.length > 20);
  assert.equal(await page.isEnabled("#stop"), true);
  await page.click("#stop");
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  assert.equal(await page.isEnabled("#stop"), false);
  let metrics = "";
  for (let i = 0; i < 50 && !/^whale_requests_active 0$/m.test(metrics); i++) {
    metrics = await (await fetch(srv.base + "/metrics")).text();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(metrics, /^whale_requests_active 0$/m, "the stopped stream was cancelled");
  assert.deepEqual(errors, []);
});
