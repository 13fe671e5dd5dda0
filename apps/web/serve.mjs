#!/usr/bin/env node
// A static file server for the page and the bundles, bound to 127.0.0.1 (no dependencies):
//
//   node apps/web/serve.mjs [ROOT] [--port 8000]
//
// ROOT (default: the repository) must hold apps/ and the bundle folders; open
// http://127.0.0.1:8000/apps/web/?bundle=/artifacts/mnist/export/bundle
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const TYPES = { ".html": "text/html; charset=utf-8", ".mjs": "text/javascript", ".js": "text/javascript",
  ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
  ".png": "image/png", ".css": "text/css", ".txt": "text/plain; charset=utf-8", ".map": "application/json" };

export function serve(root, port = 0) {
  const top = path.resolve(root);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname === "/favicon.ico") return end(res, 204, "");
    let file = path.resolve(top, `.${decodeURIComponent(url.pathname)}`);
    if (file !== top && !file.startsWith(top + path.sep)) return end(res, 403, "outside the served folder");
    try {
      if ((await stat(file)).isDirectory()) file = path.join(file, "index.html");
      await stat(file);
    } catch {
      return end(res, 404, "not found");
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream", "cache-control": "no-store" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

function end(res, code, text) {
  res.writeHead(code, { "content-type": "text/plain" });
  res.end(text);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--port");
  const port = at >= 0 ? Number(args.splice(at, 2)[1]) : 8000;
  const root = args[0] || path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const server = await serve(root, port);
  console.log(`serving ${path.resolve(root)} at http://127.0.0.1:${server.address().port}/apps/web/` +
    "?bundle=/artifacts/mnist/export/bundle (Ctrl-C stops)");
}
