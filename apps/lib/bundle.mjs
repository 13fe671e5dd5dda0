// What an app does with a kdpipe bundle, the same in Node.js (onnxruntime-node) and in a browser
// (onnxruntime-web): read kdpipe.json, preprocess raw arrays or tokenize texts exactly as the
// pipeline did, run the model, and turn its outputs into labels, probabilities or an embedding.
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

  /** Classifiers: per input, the top classes with probabilities and the raw scores (logits);
   *  embedders: per input, the embedding. */
  async predict(inputs, top = 3) {
    if (!["classification", "embedding"].includes(this.info.task)) {
      throw new Error(`a ${this.info.task} bundle: this app runs classifiers and embedders`);
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
