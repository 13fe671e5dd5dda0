#!/usr/bin/env node
// Generate text from a causal-LM bundle (or fill the masks of a masked-LM bundle) in Node.js with
// onnxruntime-node, using the bundle's KV cache (no Python, no kdpipe):
//
//   node apps/node/generate.mjs BUNDLE (--text "PROMPT" | PROMPTS.txt | PROMPTS.json) [--max-new-tokens N]
//        [--temperature T] [--top-k K] [--top-p P] [--seed S] [--json] [--threads N]
//
// PROMPTS.txt: one prompt a line; PROMPTS.json: {"texts": [...]}. Greedy unless --temperature > 0.
// Prints each continuation as its tokens come (stderr: tokens per second); with --json, one object
// per prompt: continuation, token ids, tokens per second and the time to the first token.
import { readFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";

import * as ort from "onnxruntime-node";

import { loadBundle } from "../lib/bundle.mjs";

const USAGE = "usage: node generate.mjs BUNDLE (--text PROMPT | PROMPTS.txt | PROMPTS.json) [--max-new-tokens N] " +
  "[--temperature T] [--top-k K] [--top-p P] [--seed S] [--json] [--threads N]";

function usage(message) {
  console.error(`generate: ${message}\n${USAGE}`);
  process.exit(2);
}

function parse(argv) {
  const valued = { "--text": "text", "--max-new-tokens": "maxNewTokens", "--temperature": "temperature",
                   "--top-k": "topK", "--top-p": "topP", "--seed": "seed", "--threads": "threads" };
  const opts = { json: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") opts.json = true;
    else if (a in valued) {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts[valued[a]] = a === "--text" ? argv[++i] : Number(argv[++i]);
      if (a !== "--text" && !Number.isFinite(opts[valued[a]])) usage(`${a}: not a number (${argv[i]})`);
    } else if (a.startsWith("--")) usage(`unknown option ${a}`);
    else opts.files.push(a);
  }
  return opts;
}

async function prompts(opts) {
  if (opts.text !== undefined) return [opts.text];
  if (opts.files.length !== 1) usage("give --text or one file of prompts");
  let text;
  try {
    text = await readFile(opts.files[0], "utf8");
  } catch {
    usage(`input file not found: ${opts.files[0]}`);
  }
  if (!opts.files[0].endsWith(".json")) return text.split("\n").filter((line) => line.trim());
  const doc = JSON.parse(text);
  if (!Array.isArray(doc.texts)) usage(`${opts.files[0]}: expected {"texts": [...]}`);
  return doc.texts;
}

async function main(argv) {
  const opts = parse(argv);
  const folder = opts.files.shift();
  if (!folder) usage("expected a bundle folder");
  const read = async (name, kind) => {
    const data = await readFile(path.join(folder, name));
    return kind === "json" ? JSON.parse(data.toString("utf8")) : new Uint8Array(data);
  };
  let bundle;
  try {
    bundle = await loadBundle(ort, read, { executionProviders: ["cpu"], intraOpNumThreads: opts.threads || 0 });
  } catch (e) {
    usage(`${folder}: cannot load the bundle (${e.message})`);
  }
  if (!["causal-lm", "masked-lm"].includes(bundle.info.task)) {
    usage(`${folder}: a ${bundle.info.task} bundle; this program runs language models (classify.mjs runs the rest)`);
  }
  const texts = await prompts(opts);
  for (const [index, prompt] of texts.entries()) {
    if (bundle.info.task === "masked-lm") {
      const r = await bundle.fill(prompt);
      console.log(opts.json ? JSON.stringify({ index, ...r }) : `${index}\t${r.filled}`);
      continue;
    }
    const ids = [];
    let first = null;
    let last = null;
    let shown = "";
    for await (const t of bundle.generate(prompt, opts)) {
      ids.push(t.id);
      first ??= t.ms;
      last = t;
      if (!opts.json) { // stream: print what the new token added to the decoded text
        process.stdout.write((ids.length === 1 ? `${index}\t` : "") + t.text.slice(shown.length));
        shown = t.text;
      }
    }
    const perSecond = ids.length > 1 ? ((ids.length - 1) * 1000) / (last.ms - first) : null;
    if (opts.json) {
      console.log(JSON.stringify({ index, continuation: last ? last.text : "", ids, tokens: ids.length,
                                   first_token_ms: first, tokens_per_s: perSecond }));
    } else {
      process.stdout.write("\n");
      console.error(`${ids.length} tokens, the first after ${first.toFixed(1)} ms` +
                    (perSecond ? `, then ${perSecond.toFixed(0)} tokens/s` : "") +
                    ` (onnxruntime-node ${ort.env.versions.common}, KV cache: ${bundle.info.kv_cache ? "yes" : "no"})`);
    }
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`generate: ${e.message}`);
  process.exit(1);
});
