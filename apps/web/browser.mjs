#!/usr/bin/env node
// Drive the page in headless Chromium (playwright-core, the system's chromium) the way a person
// would, for tests and for the README's screenshot:
//
//   node apps/web/browser.mjs --root DIR --bundle URLPATH [--bundle URLPATH ...] [--inputs FILE.json]
//                             [--new-tokens N] [--draw] [--screenshot FILE.png]
//
// Serves DIR (it must hold apps/ and the bundles) on 127.0.0.1 and, for each bundle, opens
// apps/web/?bundle=URLPATH in one headless Chromium. Prints a JSON list, one object per bundle: its
// kdpipe.json ("info", null if it did not load), the page's predictions for the inputs of FILE.json
// ({"inputs": [...]} or {"texts": [...]}; language models: each text's greedy continuation of
// --new-tokens tokens, or its masks filled), with --draw the prediction for a digit drawn with the
// mouse, and the errors the page logged. CHROMIUM names the browser (default: /usr/bin/chromium);
// --screenshot saves the last page.
import { readFile } from "node:fs/promises";
import process from "node:process";

import { chromium } from "playwright-core";

import { serve } from "./serve.mjs";

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const root = opt("--root");
const bundles = args.flatMap((a, i) => (a === "--bundle" ? [args[i + 1]] : []));
if (!root || !bundles.length) {
  console.error("usage: node browser.mjs --root DIR --bundle URLPATH [--bundle ...] [--inputs FILE.json] [--draw] [--screenshot FILE.png]");
  process.exit(2);
}
const doc = opt("--inputs") ? JSON.parse(await readFile(opt("--inputs"), "utf8")) : null;

const server = await serve(root);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// The flags keep a headless Chromium from reaching for the network at start-up (none is there).
const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
const outputs = [];
try {
  for (const bundlePath of bundles) outputs.push(await visit(bundlePath, bundlePath === bundles.at(-1)));
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(outputs));

async function visit(bundlePath, last) {
  const out = { bundle: bundlePath, errors: [] };
  const page = await browser.newPage({ viewport: { width: 900, height: 620 } });
  page.on("pageerror", (e) => out.errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && out.errors.push(m.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/apps/web/?bundle=${encodeURIComponent(bundlePath)}`);
  out.info = await page.evaluate(() => window.kdpipe.ready);
  if (out.info && doc && ["causal-lm", "masked-lm"].includes(out.info.task)) {
    const n = Number(opt("--new-tokens") || 20);
    out.generated = await page.evaluate(async ([texts, task, maxNewTokens]) => {
      const results = [];
      for (const t of texts) {
        results.push(await (task === "causal-lm" ? window.kdpipe.generate(t, { maxNewTokens }) : window.kdpipe.fill(t))
          .catch((e) => ({ error: e.message })));
      }
      return results;
    }, [doc.texts, out.info.task, n]);
    // and as a person would: the first text typed, the button clicked, the page's text and timing read
    await page.fill("#text", doc.texts[0]);
    if (out.info.task === "causal-lm") await page.fill("#max-new-tokens", String(n));
    await page.evaluate(() => { document.getElementById("generated").dataset.done = ""; });
    await page.click("#run-text");
    await page.waitForFunction(() => document.getElementById("generated").dataset.done === "1"
                                     || document.getElementById("status").className === "error");
    out.shown = { text: await page.textContent("#generated"), timing: await page.textContent("#timing") };
  } else if (out.info && doc) {
    out.predictions = await page.evaluate((items) => window.kdpipe.predict(items).catch((e) => ({ error: e.message })),
                                          doc.texts || doc.inputs);
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
  if (last && opt("--screenshot")) await page.screenshot({ path: opt("--screenshot") });
  await page.close();
  return out;
}
