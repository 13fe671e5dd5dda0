// What an app does with a kdpipe bundle, the same in Node.js (onnxruntime-node) and in a browser
// (onnxruntime-web): read kdpipe.json, preprocess raw arrays or tokenize texts exactly as the
// pipeline did, run the model, and turn its outputs into labels, probabilities or an embedding,
// generated text (causal LMs, with the KV cache) or filled masks (masked LMs).
// The onnxruntime module and a file reader are passed in, so this file has no platform code.
import { Tokenizer } from "@huggingface/tokenizers";

/**
 * @param ort      onnxruntime-node or onnxruntime-web
 * @param read     async (fileName, "json" | "bytes") => object | Uint8Array, relative to the bundle
 * @param options  onnxruntime session options (execution providers, threads)
 */
export async function loadBundle(ort, read, options = {}) {
  const info = await read("kdpipe.json", "json");
  if (info.format !== "kdpipe-bundle") throw new Error("kdpipe.json: not a kdpipe bundle description");
  for (const key of ["model", "tokenizer"]) {
    const name = info[key];
    if (name !== undefined && (typeof name !== "string" || name.includes("..") || name.startsWith("/"))) {
      throw new Error(`kdpipe.json: "${key}" must name a file inside the bundle folder (got ${name})`);
    }
  }
  const session = await ort.InferenceSession.create(await read(info.model, "bytes"), options);
  let tokenizer = null;
  if (info.tokenizer) {
    const config = await read("tokenizer_config.json", "json").catch(() => ({}));
    tokenizer = new Tokenizer(await read(info.tokenizer, "json"), config);
  }
  return new Bundle(ort, session, info, tokenizer);
}

export class Bundle {
  constructor(ort, session, info, tokenizer) {
    Object.assign(this, { ort, session, info, tokenizer });
    this.isText = tokenizer !== null;
  }

  /** Raw samples (each a flat array of numbers as the data source gives them, e.g. pixels 0..255,
   *  or nested arrays of the input's shape) -> Float32 model input of shape [n, ...input shape]. */
  preprocess(samples) {
    const { scale, mean, std } = this.info.preprocessing;
    const shape = this.info.input.shape.slice(1);
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(samples.length * size);
    samples.forEach((sample, i) => {
      const flat = sample.flat(Infinity);
      if (flat.length !== size) throw new Error(`sample ${i} has ${flat.length} values; the model takes ${size} (${shape})`);
      // float32 at each step, as numpy does in the pipeline: the same bits reach the model
      flat.forEach((v, j) => {
        const x = Math.fround(Math.fround(v) * Math.fround(scale));
        data[i * size + j] = Math.fround(Math.fround(x - Math.fround(mean)) / Math.fround(std));
      });
    });
    return new this.ort.Tensor("float32", data, [samples.length, ...shape]);
  }

  /** Token ids of one text, with the tokenizer's special tokens, cut to max_sequence_length the way
   *  Hugging Face's truncation does it (the text is cut, the special tokens are kept). */
  encode(text) {
    const full = this.tokenizer.encode(text).ids;
    const max = this.info.max_sequence_length;
    if (full.length <= max) return full;
    const bare = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const start = full.findIndex((_, i) => bare.every((id, j) => full[i + j] === id));
    const keep = max - (full.length - bare.length);
    return [...full.slice(0, start), ...bare.slice(0, keep), ...full.slice(start + bare.length)];
  }

  /** Texts -> feeds: ids padded on the right, attention mask 0 on the padding. */
  textFeeds(texts) {
    const encoded = texts.map((t) => this.encode(t));
    const length = Math.max(...encoded.map((ids) => ids.length));
    const ids = new BigInt64Array(texts.length * length);
    const mask = new BigInt64Array(texts.length * length);
    encoded.forEach((row, i) => row.forEach((id, j) => {
      ids[i * length + j] = BigInt(id);
      mask[i * length + j] = 1n;
    }));
    const dims = [texts.length, length];
    const known = {
      input_ids: new this.ort.Tensor("int64", ids, dims),
      attention_mask: new this.ort.Tensor("int64", mask, dims),
      token_type_ids: new this.ort.Tensor("int64", new BigInt64Array(ids.length), dims),
    };
    return Object.fromEntries(this.session.inputNames.map((name) => {
      if (!(name in known)) throw new Error(`the model asks for an input this app cannot fill: ${name}`);
      return [name, known[name]];
    }));
  }

  /** Run on raw samples (array bundles) or texts (text bundles): the output rows and the time taken. */
  async run(inputs) {
    const feeds = this.isText ? this.textFeeds(inputs) : { [this.info.input.name]: this.preprocess(inputs) };
    const t0 = performance.now();
    const results = await this.session.run(feeds);
    const ms = performance.now() - t0;
    const out = results[this.session.outputNames[0]];
    const width = out.dims[out.dims.length - 1];
    const rows = [];
    for (let i = 0; i < out.dims[0]; i++) rows.push(Array.from(out.data.subarray(i * width, (i + 1) * width)));
    return { rows, ms };
  }

  /** Causal LMs: one call of the model on new token ids after `past` (null: none): the last position's
   *  logits and the present keys and values, the next call's past. With a KV cache in the graph
   *  (kdpipe.json kv_cache) a call after the prompt takes one token; without one, the whole sequence. */
  async step(ids, past) {
    const names = this.session.inputNames;
    const kv = this.info.kv_cache;
    const done = past ? past[names.find((n) => n.startsWith("past_key_values."))].dims[2] : 0;
    const n = ids.length;
    const int64 = (values, dims) => new this.ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
    const known = {
      input_ids: () => int64(ids, [1, n]),
      attention_mask: () => int64(new Array(done + n).fill(1), [1, done + n]),
      position_ids: () => int64(Array.from({ length: n }, (_, i) => done + i), [1, n]),
      token_type_ids: () => int64(new Array(n).fill(0), [1, n]),
    };
    const feeds = {};
    for (const name of names) {
      if (name.startsWith("past_key_values.")) {
        feeds[name] = past ? past[name] : new this.ort.Tensor("float32", new Float32Array(0), [1, kv.heads, 0, kv.head_size]);
      } else if (name in known) {
        feeds[name] = known[name]();
      } else {
        throw new Error(`the model asks for an input this app cannot fill: ${name}`);
      }
    }
    const out = await this.session.run(feeds);
    const logits = out[this.session.outputNames[0]];
    const vocab = logits.dims[2];
    const present = {};
    for (const name of this.session.outputNames) {
      if (name.startsWith("present.")) present[`past_key_values.${name.slice("present.".length)}`] = out[name];
    }
    return { logits: logits.data.subarray((n - 1) * vocab, n * vocab), past: present };
  }

  /** Causal LMs: new tokens after a prompt, one at a time as they come (greedy when temperature is 0,
   *  else sampled from the top_k most likely and the fewest reaching top_p, with a seeded generator).
   *  Yields {id, text (all generated so far, decoded), ms (since the start)}. */
  async *generate(prompt, { maxNewTokens = 20, temperature = 0, topK = 0, topP = 1, seed = 0 } = {}) {
    if (this.info.task !== "causal-lm") throw new Error(`a ${this.info.task} bundle does not generate text`);
    let ids = this.tokenizer.encode(prompt, { add_special_tokens: false }).ids.map(Number);
    if (!ids.length) throw new Error("an empty prompt: give at least one token of text");
    const cached = this.session.inputNames.some((n) => n.startsWith("past_key_values."));
    const eos = this.info.kv_cache ? this.info.kv_cache.eos_token_id : null;
    const random = mulberry32(seed);
    const t0 = performance.now();
    let { logits, past } = await this.step(ids, null);
    const made = [];
    for (let i = 0; i < maxNewTokens; i++) {
      const id = pick(logits, temperature, topK, topP, random);
      made.push(id);
      ids = [...ids, id];
      yield { id, text: this.tokenizer.decode(made), ms: performance.now() - t0 };
      if (id === eos) return;
      if (i + 1 < maxNewTokens) ({ logits, past } = cached ? await this.step([id], past) : await this.step(ids, null));
    }
  }

  /** Masked LMs: the text with each mask token replaced by the model's most likely token. */
  async fill(text) {
    if (this.info.task !== "masked-lm") throw new Error(`a ${this.info.task} bundle does not fill masks`);
    const ids = this.tokenizer.encode(text).ids.map(Number);
    const { rows } = await this.runIds(ids);
    const maskId = this.info.mask_token_id;
    const filled = ids.map((id, i) => (id === maskId ? argmax(rows[i]) : id));
    return { filled: this.tokenizer.decode(filled, { skip_special_tokens: true }), ids: filled };
  }

  /** One text's token ids through the model (no padding): the output row of every position. */
  async runIds(ids) {
    const n = ids.length;
    const int64 = (values) => new this.ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, n]);
    const known = { input_ids: int64(ids), attention_mask: int64(ids.map(() => 1)), token_type_ids: int64(ids.map(() => 0)) };
    const out = await this.session.run(Object.fromEntries(this.session.inputNames.map((name) => [name, known[name]])));
    const logits = out[this.session.outputNames[0]];
    const width = logits.dims[2];
    return { rows: Array.from({ length: n }, (_, i) => logits.data.subarray(i * width, (i + 1) * width)) };
  }

  /** Classifiers: per input, the top classes with probabilities and the raw scores (logits);
   *  embedders: per input, the embedding. */
  async predict(inputs, top = 3) {
    if (!["classification", "embedding"].includes(this.info.task)) {
      throw new Error(`a ${this.info.task} bundle: this app runs classifiers and embedders (generate: causal-lm, fill: masked-lm)`);
    }
    const { rows, ms } = await this.run(inputs);
    const results = rows.map((row) => {
      if (this.info.task === "embedding") return { embedding: row };
      const probs = softmax(row);
      const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, top);
      const labels = this.info.labels;
      return { label: labels[order[0][1]], probability: order[0][0], logits: row,
               top: order.map(([p, i]) => ({ label: labels[i], probability: p })) };
    });
    return { results, ms };
  }
}

export function softmax(row) {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The next token: the arg-max at temperature 0, else a draw from the tempered distribution cut to the
 *  topK most likely (0: all) and to the fewest whose probabilities reach topP. */
export function pick(logits, temperature, topK, topP, random) {
  if (!(temperature > 0)) return argmax(logits);
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (topK > 0) order = order.slice(0, topK);
  const top = logits[order[0]];
  let p = order.map((i) => Math.exp((logits[i] - top) / temperature));
  let sum = p.reduce((a, b) => a + b, 0);
  p = p.map((v) => v / sum);
  if (topP < 1) {
    let acc = 0;
    const keep = p.findIndex((v) => (acc += v) >= topP) + 1 || p.length;
    order = order.slice(0, keep);
    sum = p.slice(0, keep).reduce((a, b) => a + b, 0);
    p = p.slice(0, keep).map((v) => v / sum);
  }
  let r = random();
  for (let i = 0; i < p.length; i++) if ((r -= p[i]) <= 0) return order[i];
  return order[order.length - 1];
}

/** A small seeded generator of floats in [0, 1): the same seed, the same draws. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
