// The page: load a bundle folder over HTTP, draw a digit (image bundles) or type a text (text
// bundles), and show the prediction, the top classes and the time per call; language-model bundles
// generate text token by token with their KV cache (tokens per second shown) or fill [MASK]s.
// window.kdpipe exposes load(), predict(), generate() and fill() so that tests drive the same code a
// person does.
import * as ort from "onnxruntime-web";

import { loadBundle } from "../lib/bundle.mjs";

ort.env.wasm.wasmPaths = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers a plain static server does not send

const $ = (id) => document.getElementById(id);
let bundle = null;

async function load(url) {
  const base = new URL(url.endsWith("/") ? url : `${url}/`, location.href);
  const read = async (name, kind) => {
    const res = await fetch(new URL(name, base));
    if (!res.ok) throw new Error(`${name}: HTTP ${res.status}`);
    return kind === "json" ? res.json() : new Uint8Array(await res.arrayBuffer());
  };
  bundle = await loadBundle(ort, read, { executionProviders: ["wasm"] });
  const { info } = bundle;
  $("status").textContent = `Loaded ${info.variant} (${info.task}) from ${base.pathname}: ` +
    (bundle.isText ? `texts up to ${info.max_sequence_length} tokens` : `input ${info.input.shape.slice(1).join("×")}`);
  $("status").className = "muted";
  const image = !bundle.isText && info.input.shape.length === 4;
  const lm = ["causal-lm", "masked-lm"].includes(info.task);
  $("image-input").hidden = !image;
  $("text-input").hidden = !bundle.isText;
  $("lm-options").hidden = info.task !== "causal-lm";
  $("generated").hidden = !lm;
  if (lm) {
    $("text-prompt").textContent = info.task === "causal-lm" ? "A prompt to continue:" : `A text with ${info.mask_token} in it:`;
    $("run-text").textContent = info.task === "causal-lm" ? "Generate" : "Fill";
    $("text").value = info.task === "causal-lm" ? "The for statement" : `The for statement iterates over the ${info.mask_token} of a sequence.`;
  }
  if (image) {
    $("small").width = info.input.shape[3];
    $("small").height = info.input.shape[2];
  }
  // One call before any is shown: the first compiles WebAssembly kernels and would overstate the time.
  if (info.task === "causal-lm") {
    for await (const _ of bundle.generate("warm up", { maxNewTokens: 2 })); // eslint-disable-line no-unused-vars
  } else if (info.task === "masked-lm") {
    await bundle.runIds([0, 1]);
  } else {
    await bundle.run(bundle.isText ? ["warm up"] : [new Array(info.input.shape.slice(1).reduce((a, b) => a * b)).fill(0)]);
  }
  return info;
}

/** Causal LMs: generate, showing each token as it comes; returns the ids, the text and the speed. */
async function generate(prompt, options = {}) {
  if (!bundle) throw new Error("no bundle loaded");
  const ids = [];
  let first = null;
  let last = null;
  $("generated").textContent = prompt;
  $("generated").dataset.done = "";
  for await (const t of bundle.generate(prompt, options)) {
    ids.push(t.id);
    first ??= t.ms;
    last = t;
    $("generated").textContent = prompt + t.text;
  }
  const tokensPerSecond = ids.length > 1 ? ((ids.length - 1) * 1000) / (last.ms - first) : null;
  $("timing").textContent = `${ids.length} tokens: the first after ${first.toFixed(1)} ms` +
    (tokensPerSecond ? `, then ${tokensPerSecond.toFixed(0)} tokens/s` : "") +
    ` (onnxruntime-web ${ort.env.versions.web}, WebAssembly, 1 thread, KV cache: ${bundle.info.kv_cache ? "yes" : "no"})`;
  $("generated").dataset.done = "1";
  return { ids, text: last ? last.text : "", firstTokenMs: first, tokensPerSecond };
}

async function fill(text) {
  if (!bundle) throw new Error("no bundle loaded");
  $("generated").dataset.done = "";
  const r = await bundle.fill(text);
  $("generated").textContent = r.filled;
  $("generated").dataset.done = "1";
  return r;
}

async function predict(inputs) {
  if (!bundle) throw new Error("no bundle loaded");
  return bundle.predict(inputs);
}

function show({ results, ms }) {
  const r = results[0];
  if (r.embedding) {
    $("prediction").textContent = `embedding: ${r.embedding.length} values`;
    $("top").innerHTML = `<tr><td>${r.embedding.slice(0, 6).map((v) => v.toFixed(3)).join(", ")}, …</td></tr>`;
  } else {
    $("prediction").textContent = r.label;
    $("top").innerHTML = r.top.map((t) => `<tr><td>${escape(t.label)}</td><td>${(100 * t.probability).toFixed(1)}%</td>` +
      `<td><span class="bar" style="width:${Math.round(200 * t.probability)}px"></span></td></tr>`).join("");
  }
  $("timing").textContent = `${ms.toFixed(2)} ms per call (onnxruntime-web ${ort.env.versions.web}, WebAssembly, 1 thread)`;
}

function escape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function fail(e) {
  $("status").textContent = `Error: ${e.message}`;
  $("status").className = "error";
}

// --- drawing: white ink on black, cropped to the ink and centred like MNIST's digits ------------
const pad = $("pad");
const ctx = pad.getContext("2d");
function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  $("prediction").textContent = "";
  $("top").innerHTML = "";
}
clearPad();
let drawing = false;
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  ctx.beginPath();
  ctx.moveTo(e.offsetX, e.offsetY);
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  Object.assign(ctx, { lineWidth: 22, lineCap: "round", lineJoin: "round", strokeStyle: "#fff" });
  ctx.lineTo(e.offsetX, e.offsetY);
  ctx.stroke();
});
for (const ev of ["pointerup", "pointerleave"]) {
  pad.addEventListener(ev, () => {
    if (!drawing) return;
    drawing = false;
    predict([padToSample()]).then(show, fail);
  });
}
$("clear").addEventListener("click", clearPad);

/** The drawing as one raw sample in the data source's units (kdpipe.json preprocessing.scale maps
 *  raw values to 0..1): the ink's bounding box, padded to a square, scaled to the model's size. */
function padToSample() {
  const [c, h, w] = bundle.info.input.shape.slice(1);
  const pixels = ctx.getImageData(0, 0, pad.width, pad.height).data;
  let [x0, y0, x1, y1, mass, mx, my] = [pad.width, pad.height, -1, -1, 0, 0, 0];
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      const v = pixels[4 * (y * pad.width + x)];
      if (v === 0) continue;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      [mass, mx, my] = [mass + v, mx + v * x, my + v * y];
    }
  }
  const small = $("small").getContext("2d");
  small.fillStyle = "#000";
  small.fillRect(0, 0, w, h);
  if (mass > 0) {
    // As MNIST was made: the digit's larger side fills 20 of 28 pixels, centred on its centre of
    // mass (centring the bounding box instead turns a drawn 7 into a 2 for the default student).
    const side = (Math.max(x1 - x0, y1 - y0) * 28) / 20;
    small.imageSmoothingQuality = "high";
    small.drawImage(pad, mx / mass - side / 2, my / mass - side / 2, side, side, 0, 0, w, h);
  }
  const rgba = small.getImageData(0, 0, w, h).data;
  const scale = bundle.info.preprocessing.scale;
  const sample = new Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let i = 0; i < h * w; i++) sample[ch * h * w + i] = rgba[4 * i + (c === 3 ? ch : 0)] / 255 / scale;
  }
  return sample;
}

$("run-text").addEventListener("click", () => {
  const task = bundle && bundle.info.task;
  if (task === "causal-lm") {
    generate($("text").value, { maxNewTokens: Number($("max-new-tokens").value), temperature: Number($("temperature").value),
                                seed: 0 }).catch(fail);
  } else if (task === "masked-lm") fill($("text").value).catch(fail);
  else predict([$("text").value]).then(show, fail);
});
$("load").addEventListener("click", () => load($("bundle").value).catch(fail));

const fromQuery = new URLSearchParams(location.search).get("bundle");
if (fromQuery) $("bundle").value = fromQuery;
window.kdpipe = { load, predict, generate, fill, show, padToSample, ready: load($("bundle").value).catch((e) => { fail(e); return null; }) };
