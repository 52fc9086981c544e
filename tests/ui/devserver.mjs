#!/usr/bin/env node
// Development server for the ringmq management UI (no dependencies).
//
// Serves src/http/ui/{index.html,app.js,style.css} at /, /app.js and /style.css
// (as the broker binary does) and proxies /api/* to TARGET, so the UI is
// same-origin with the API it talks to.
//
//   node tests/ui/devserver.mjs TARGET [--port N] [--host H]
//   node tests/ui/devserver.mjs http://127.0.0.1:15673            # RabbitMQ
//   node tests/ui/devserver.mjs http://127.0.0.1:15672 --port 8090 # ringmq
//
// The UI files are read on every request, so edits show on reload.
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const uiDir = path.resolve(here, '../../src/http/ui');

function usage(msg) {
  if (msg) console.error(`devserver: ${msg}`);
  console.error('usage: node tests/ui/devserver.mjs TARGET_BASE_URL [--port N] [--host H]');
  process.exit(2);
}

const args = process.argv.slice(2);
let target = null;
let port = 8089;
let host = '127.0.0.1';
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--port') port = Number(args[++i]);
  else if (a === '--host') host = args[++i];
  else if (a === '-h' || a === '--help') usage();
  else if (!target) target = a;
  else usage(`unexpected argument ${a}`);
}
if (!target) usage('missing TARGET_BASE_URL');
if (!Number.isInteger(port) || port < 0 || port > 65535) usage('bad --port');
let targetUrl;
try {
  targetUrl = new URL(target);
} catch {
  usage(`bad TARGET_BASE_URL ${target}`);
}
const basePath = targetUrl.pathname.replace(/\/+$/, '');
const client = targetUrl.protocol === 'https:' ? https : http;

const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);

function proxy(req, res) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
  headers.host = targetUrl.host;
  const upstream = client.request(
    {
      protocol: targetUrl.protocol,
      hostname: targetUrl.hostname,
      port: targetUrl.port || (targetUrl.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: basePath + req.url,
      headers,
    },
    (up) => {
      const out = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k)) out[k] = v;
      res.writeHead(up.statusCode, out);
      up.pipe(res);
    },
  );
  upstream.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'bad_gateway', reason: `devserver: ${target}: ${e.message}` }));
    } else res.destroy();
  });
  req.pipe(upstream);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/api' || url.pathname.startsWith('/api/')) return proxy(req, res);
  const f = files[url.pathname];
  if (!f || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('not found\n');
  }
  fs.readFile(path.join(uiDir, f[0]), (err, body) => {
    if (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      return res.end(`${err.message}\n`);
    }
    res.writeHead(200, {
      'content-type': f[1],
      'cache-control': 'no-cache',
      'content-length': body.length,
      // strict on purpose: the UI must keep working without inline scripts or styles
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
});

server.listen(port, host, () => {
  const a = server.address();
  console.log(`devserver: http://${a.address}:${a.port}/ (UI from ${uiDir}, /api -> ${target})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
