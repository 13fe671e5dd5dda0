#!/usr/bin/env node
// Drive the page in headless Chromium (playwright-core, the system's chromium) the way a person
// would, for tests and for the README's screenshot:
//
//   node apps/web/browser.mjs --root DIR --bundle URLPATH [--inputs FILE.json] [--draw] [--screenshot FILE.png]
//
// Serves DIR (it must hold apps/ and the bundle) on 127.0.0.1, opens apps/web/?bundle=URLPATH, and
// prints one JSON object: the bundle's kdpipe.json, the page's results for the inputs of FILE.json
// ({"inputs": [...]} or {"texts": [...]}) and, with --draw, the prediction for a digit drawn with
// the mouse; errors the page logged are in "errors". CHROMIUM names the browser (default: chromium on PATH).
import { readFile } from "node:fs/promises";
import process from "node:process";

import { chromium } from "playwright-core";

import { serve } from "./serve.mjs";

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const root = opt("--root");
const bundlePath = opt("--bundle");
if (!root || !bundlePath) {
  console.error("usage: node browser.mjs --root DIR --bundle URLPATH [--inputs FILE.json] [--draw] [--screenshot FILE.png]");
  process.exit(2);
}

const server = await serve(root);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// The flags keep a headless Chromium from reaching for the network at start-up (none is there).
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
const out = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 620 } });
  page.on("pageerror", (e) => out.errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && out.errors.push(m.text()));
  const url = `http://127.0.0.1:${server.address().port}/apps/web/?bundle=${encodeURIComponent(bundlePath)}`;
  await page.goto(url);
  out.info = await page.evaluate(() => window.kdpipe.ready);
  const inputsFile = opt("--inputs");
  if (out.info && inputsFile) {
    const doc = JSON.parse(await readFile(inputsFile, "utf8"));
    out.predictions = await page.evaluate((items) => window.kdpipe.predict(items), doc.texts || doc.inputs);
    if (doc.texts) { // shown on the page too, as a person typing the first text would see it
      await page.fill("#text", doc.texts[0]);
      await page.click("#run-text");
    }
  }
  if (out.info && args.includes("--draw")) { // a "7": a stroke across, then down to the left
    const box = await page.locator("#pad").boundingBox();
    const at = (x, y) => [box.x + x * box.width, box.y + y * box.height];
    await page.mouse.move(...at(0.25, 0.22));
    await page.mouse.down();
    for (const [x, y] of [[0.5, 0.22], [0.75, 0.22], [0.62, 0.5], [0.5, 0.8]]) await page.mouse.move(...at(x, y), { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => document.getElementById("prediction").textContent !== "");
    out.drawn = await page.evaluate(() => document.getElementById("prediction").textContent);
  }
  if (opt("--screenshot")) await page.screenshot({ path: opt("--screenshot") });
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
