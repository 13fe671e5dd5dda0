#!/usr/bin/env node
// Run a kdpipe bundle from Node.js with onnxruntime-node (no Python, no kdpipe):
//
//   node apps/node/classify.mjs BUNDLE INPUT [--json] [--threads N]
//
// INPUT: a .json file, {"inputs": [sample, ...]} for array bundles (raw values as the data source
// gives them, e.g. pixels 0..255, flat or shaped like the model's input) or {"texts": [...]} for
// text bundles; or a .txt file, one text a line. Prints a line per input: its label and probability
// (classifiers) or its embedding; with --json, one JSON object per input with the top classes and
// the raw scores too.
import { readFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";

import * as ort from "onnxruntime-node";

import { loadBundle } from "../lib/bundle.mjs";

function usage(message) {
  console.error(`classify: ${message}\nusage: node classify.mjs BUNDLE INPUT [--json] [--threads N]`);
  process.exit(2);
}

async function readInputs(file, isText) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch {
    usage(`input file not found: ${file}`);
  }
  if (file.endsWith(".txt")) return text.split("\n").filter((line) => line.trim());
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    usage(`${file}: not valid JSON (${e.message})`);
  }
  const items = isText ? doc.texts : doc.inputs;
  if (!Array.isArray(items)) usage(`${file}: expected {"${isText ? "texts" : "inputs"}": [...]} for this bundle`);
  return items;
}

async function main(argv) {
  const args = argv.filter((a) => !a.startsWith("--"));
  const json = argv.includes("--json");
  const threadsAt = argv.indexOf("--threads");
  const threads = threadsAt >= 0 ? Number(argv[threadsAt + 1]) : 0;
  if (threadsAt >= 0) args.splice(args.indexOf(argv[threadsAt + 1]), 1);
  if (args.length !== 2) usage("expected a bundle folder and an input file");
  const [folder, inputFile] = args;
  const read = async (name, kind) => {
    const data = await readFile(path.join(folder, name));
    return kind === "json" ? JSON.parse(data.toString("utf8")) : new Uint8Array(data);
  };
  let bundle;
  try {
    bundle = await loadBundle(ort, read, { executionProviders: ["cpu"], intraOpNumThreads: threads });
  } catch (e) {
    usage(`${folder}: cannot load the bundle (${e.message})`);
  }
  const inputs = await readInputs(inputFile, bundle.isText);
  const { results, ms } = await bundle.predict(inputs);
  results.forEach((r, i) => {
    if (json) console.log(JSON.stringify({ index: i, ...r }));
    else if (r.embedding) console.log(`${i}\t${JSON.stringify(r.embedding)}`);
    else console.log(`${i}\t${r.label}\t${r.probability.toFixed(4)}`);
  });
  if (!json) console.error(`${results.length} input(s) in ${ms.toFixed(2)} ms (onnxruntime-node ${ort.env.versions.common})`);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`classify: ${e.message}`);
  process.exit(1);
});
