#!/usr/bin/env node
// smartauth test server: a real HTTP(S) server the busted specs drive.
//
//   node spec/helpers/server.js [--tls CERT KEY] [--fake MODULE]
//
// Two listeners on 127.0.0.1, both on port 0 (the OS picks):
//   main   HTTP, or HTTPS with CERT/KEY: records every request and answers with
//          scripted responses or a tiny built-in OAuth token endpoint + resource.
//   admin  plain HTTP, JSON in / JSON out: scripts responses, reads the record.
// --fake MODULE loads a Node module whose handle(rec, res, send) answers the requests
// no script answers (a stateful fake service, e.g. spec/helpers/services.js; it returns
// false for paths it does not know) and whose admin(input) serves POST /fake.
// On start it prints one JSON line to stdout: {"port":N,"admin_port":M,"pid":P}.
// It exits on SIGTERM/SIGINT/SIGHUP and, by itself, when its parent process dies.
//
// Only Node built-in modules are used. See spec/helpers/server.lua for the Lua side.
'use strict';

const http = require('http');
const https = require('https');
const crypto = require('crypto');
const fs = require('fs');

const HOST = '127.0.0.1';
const CHUNK = 16 * 1024; // size of the pieces body_size / chunked_size are written in

// ---------------------------------------------------------------------------
// arguments

let tlsOptions = null;
let fake = null;
{
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--tls' && i + 2 < args.length) {
      tlsOptions = { cert: fs.readFileSync(args[i + 1]), key: fs.readFileSync(args[i + 2]) };
      i += 2;
    } else if (args[i] === '--fake' && i + 1 < args.length) {
      fake = require(require('path').resolve(args[i + 1]));
      i += 1;
    } else {
      fail(`unknown or incomplete argument: ${args[i]}`);
    }
  }
}

function fail(message) {
  process.stderr.write(`server.js: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// state (everything /reset clears, except issued tokens and connection ids)

let requests = [];      // recorded requests, in arrival order
let seq = 0;            // request sequence number; restarts at 1 after /reset
let connCount = 0;      // TCP connections accepted by the main listener since start/reset
let connIds = 0;        // connection id counter; never reset, so ids never collide
let scripts = new Map(); // path -> { queue: [response...], dflt: response | null }
const tokens = new Set(); // access tokens issued by /token or /issue

const CONN_ID = Symbol('connId');

// ---------------------------------------------------------------------------
// decoding helpers

// application/x-www-form-urlencoded component: '+' is a space, %XX is a byte,
// and the resulting bytes are read as UTF-8. A malformed %-escape stays literal.
function formDecode(s) {
  const src = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(src.length);
  let n = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x2b) { // '+'
      out[n++] = 0x20;
    } else if (c === 0x25 && isHex(src[i + 1]) && isHex(src[i + 2])) {
      out[n++] = parseInt(String.fromCharCode(src[i + 1], src[i + 2]), 16);
      i += 2;
    } else {
      out[n++] = c;
    }
  }
  return out.subarray(0, n).toString('utf8');
}

function isHex(c) {
  return c !== undefined &&
    ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

// "a=1&b=2" -> { map: {a:'1', b:'2'} (last wins), pairs: [['a','1'], ['b','2']] }
function parseForm(s) {
  const map = {};
  const pairs = [];
  if (s === '') return { map, pairs };
  for (const part of s.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = formDecode(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : formDecode(part.slice(eq + 1));
    map[k] = v;
    pairs.push([k, v]);
  }
  return { map, pairs };
}

// Authorization: Basic -> {user, pass, raw}; each side form-urldecoded (RFC 6749 §2.3.1).
function parseBasic(value) {
  const m = /^basic\s+(\S*)\s*$/i.exec(value || '');
  if (!m) return undefined;
  const raw = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = raw.indexOf(':');
  if (colon < 0) return { user: formDecode(raw), raw };
  return { user: formDecode(raw.slice(0, colon)), pass: formDecode(raw.slice(colon + 1)), raw };
}

// Header object built from the raw headers: names lower-cased, values as received,
// repeated headers joined with ", " (Node's req.headers would silently drop repeats
// of some headers such as Authorization or Content-Type).
function headerObject(raw) {
  const h = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    h[k] = k in h ? `${h[k]}, ${raw[i + 1]}` : raw[i + 1];
  }
  return h;
}

function isForm(headers) {
  return /^application\/x-www-form-urlencoded\s*(;|$)/i.test(headers['content-type'] || '');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// tokens

function randomHex(bytes) {
  return crypto.randomBytes(bytes).toString('hex');
}

// A token response as RFC 6749 §5.1 describes it.
function issueToken({ refresh = true, scope } = {}) {
  const t = { access_token: `at-${randomHex(16)}`, token_type: 'Bearer', expires_in: 3600 };
  if (refresh) t.refresh_token = `rt-${randomHex(16)}`;
  if (scope !== undefined) t.scope = scope;
  tokens.add(t.access_token);
  return t;
}

// ---------------------------------------------------------------------------
// responses

function sendJson(res, status, value, extraHeaders) {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.writeHead(status, Object.assign({
    'Content-Type': 'application/json',
    'Content-Length': body.length,
  }, extraHeaders || {}));
  res.end(body);
}

// Writes `total` bytes of 'x' in CHUNK-sized pieces, honouring back-pressure.
function writeFiller(res, total) {
  const piece = Buffer.alloc(Math.min(CHUNK, Math.max(total, 1)), 'x');
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, piece.length);
      left -= n;
      if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

// Sets the headers of a scripted response; a value may be an array (repeated header).
function setHeaders(res, headers) {
  for (const [k, v] of Object.entries(headers || {})) res.setHeader(k, v);
}

function hasHeader(headers, name) {
  return Object.keys(headers || {}).some((k) => k.toLowerCase() === name);
}

// The body of a scripted response as a Buffer: body, body_b64, json, or empty.
function scriptedBody(spec) {
  if (typeof spec.body === 'string') return Buffer.from(spec.body, 'utf8');
  if (typeof spec.body_b64 === 'string') return Buffer.from(spec.body_b64, 'base64');
  if (spec.json !== undefined) return Buffer.from(JSON.stringify(spec.json), 'utf8');
  return Buffer.alloc(0);
}

// Answers `req` with a response spec (see the header of server.lua for the fields).
function sendScripted(req, res, spec) {
  const go = () => {
    const socket = req.socket;
    if (spec.hang) return; // never answer; the socket stays open until the client gives up
    if (spec.close) { socket.destroy(); return; }

    // raw / raw_b64: these bytes verbatim on the socket, then close it (malformed answers).
    if (typeof spec.raw === 'string' || typeof spec.raw_b64 === 'string') {
      const bytes = typeof spec.raw === 'string'
        ? Buffer.from(spec.raw, 'utf8') : Buffer.from(spec.raw_b64, 'base64');
      socket.end(bytes);
      return;
    }

    const status = spec.status === undefined ? 200 : spec.status;
    const json = spec.json !== undefined && spec.body === undefined && spec.body_b64 === undefined;
    if (json && !hasHeader(spec.headers, 'content-type')) {
      res.setHeader('Content-Type', 'application/json');
    }

    // truncate: headers announce more bytes than are sent, then the socket is closed.
    // The status line and headers are written by hand so Node does not interfere.
    if (spec.truncate) {
      const body = scriptedBody(spec);
      const missing = typeof spec.truncate === 'number' ? spec.truncate : 10;
      const lines = [`HTTP/1.1 ${status} ${spec.reason || http.STATUS_CODES[status] || 'Status'}`];
      const hdrs = Object.assign({}, spec.headers || {});
      if (json && !hasHeader(hdrs, 'content-type')) hdrs['Content-Type'] = 'application/json';
      for (const [k, v] of Object.entries(hdrs)) {
        for (const one of [].concat(v)) lines.push(`${k}: ${one}`);
      }
      lines.push(`Content-Length: ${body.length + missing}`, '', '');
      socket.write(lines.join('\r\n'));
      socket.end(body);
      return;
    }

    res.statusCode = status;
    if (spec.reason) res.statusMessage = spec.reason;
    setHeaders(res, spec.headers);

    if (typeof spec.body_size === 'number') {
      res.setHeader('Content-Length', spec.body_size);
      writeFiller(res, spec.body_size);
    } else if (typeof spec.chunked_size === 'number') {
      res.removeHeader('Content-Length');
      res.setHeader('Transfer-Encoding', 'chunked');
      writeFiller(res, spec.chunked_size);
    } else {
      const body = scriptedBody(spec);
      if (!hasHeader(spec.headers, 'content-length')) res.setHeader('Content-Length', body.length);
      res.end(body);
    }
  };
  if (spec.delay_ms > 0) setTimeout(go, spec.delay_ms); else go();
}

// The next scripted response for `path`, or null when nothing is scripted.
function takeScript(path) {
  const s = scripts.get(path);
  if (!s) return null;
  if (s.queue.length > 0) return s.queue.shift();
  return s.dflt;
}

// ---------------------------------------------------------------------------
// built-in behaviour (used when nothing is scripted for a path)

function tokenEndpoint(rec, res) {
  const f = rec.form || {};
  const noStore = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
  const bad = (error, description) =>
    sendJson(res, 400, description ? { error, error_description: description } : { error }, noStore);
  const needs = { authorization_code: 'code', password: 'username', refresh_token: 'refresh_token' };

  const grant = f.grant_type;
  if (grant === undefined) return bad('invalid_request', 'grant_type missing');
  if (grant !== 'client_credentials' && !(grant in needs)) return bad('unsupported_grant_type');
  if (needs[grant] && !f[needs[grant]]) return bad('invalid_request', `${needs[grant]} missing`);
  return sendJson(res, 200, issueToken({ refresh: grant !== 'client_credentials', scope: f.scope }), noStore);
}

function protectedResource(rec, res) {
  let token;
  const m = /^bearer\s+(\S+)\s*$/i.exec(rec.headers.authorization || '');
  if (m) token = m[1];
  else if (rec.args.access_token !== undefined) token = rec.args.access_token;
  else if (rec.form && rec.form.access_token !== undefined) token = rec.form.access_token;

  if (token !== undefined && tokens.has(token)) {
    return sendJson(res, 200, { ok: true, path: rec.path, method: rec.method });
  }
  return sendJson(res, 401, { error: 'invalid_token' },
    { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
}

function builtin(rec, res) {
  if (rec.path === '/token' && rec.method === 'POST') return tokenEndpoint(rec, res);
  if (rec.path === '/api' || rec.path.startsWith('/api/')) return protectedResource(rec, res);
  if (rec.path === '/redirect') {
    res.writeHead(302, { Location: '/token', 'Content-Length': 0 });
    return res.end();
  }
  return sendJson(res, 404, { error: 'not_found' });
}

// ---------------------------------------------------------------------------
// main listener

async function onMainRequest(req, res) {
  const body = await readBody(req);
  const q = req.url.indexOf('?');
  const headers = headerObject(req.rawHeaders);
  const query = q < 0 ? '' : req.url.slice(q + 1);

  // The connection id lives on the TCP socket; for TLS, req.socket wraps it (_parent).
  const tcp = req.socket[CONN_ID] !== undefined ? req.socket : req.socket._parent;

  const rec = {
    seq: ++seq,
    conn: tcp && tcp[CONN_ID],
    method: req.method,
    path: q < 0 ? req.url : req.url.slice(0, q),
    query,
    url: req.url,
    http_version: req.httpVersion,
    headers,
    raw_headers: pairsOf(req.rawHeaders),
    body: body.toString('utf8'),
    body_b64: body.toString('base64'),
  };
  rec.args = parseForm(query).map;
  if (isForm(headers)) {
    const f = parseForm(body.toString('utf8'));
    rec.form = f.map;
    rec.form_pairs = f.pairs;
  }
  const basic = parseBasic(headers.authorization);
  if (basic) rec.basic = basic;
  requests.push(rec);

  const spec = takeScript(rec.path);
  if (spec) sendScripted(req, res, spec);
  else if (!(fake && fake.handle(rec, res, sendJson))) builtin(rec, res);
}

function pairsOf(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

const main = tlsOptions ? https.createServer(tlsOptions) : http.createServer();
main.keepAliveTimeout = 60 * 1000; // let specs test connection reuse without racing 5 s
main.headersTimeout = 65 * 1000;
main.requestTimeout = 0;           // a slow client is a test case, not an attack
main.on('request', (req, res) => {
  onMainRequest(req, res).catch((err) => {
    process.stderr.write(`server.js: main: ${err && err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
  });
});
// 'connection' is the accepted TCP socket, for HTTP and HTTPS alike.
main.on('connection', (socket) => {
  connCount++;
  socket[CONN_ID] = ++connIds;
  socket.on('error', () => {}); // resets by clients are expected in these tests
});
main.on('clientError', (err, socket) => socket.destroy());
main.on('tlsClientError', () => {}); // e.g. the client rejected our certificate

// ---------------------------------------------------------------------------
// admin listener

async function onAdminRequest(req, res) {
  const raw = (await readBody(req)).toString('utf8');
  let input = {};
  if (raw !== '') {
    try { input = JSON.parse(raw); } catch (e) { return sendJson(res, 400, { error: `bad JSON: ${e.message}` }); }
  }
  const route = `${req.method} ${req.url.split('?')[0]}`;
  switch (route) {
    case 'POST /script': {
      if (typeof input.path !== 'string' || !input.path.startsWith('/')) {
        return sendJson(res, 400, { error: 'path must be a string starting with /' });
      }
      const response = input.response || {};
      if (typeof response !== 'object' || Array.isArray(response)) {
        return sendJson(res, 400, { error: 'response must be an object' });
      }
      const times = input.times === undefined ? 1 : input.times;
      if (!(times === 'default' || (Number.isInteger(times) && times >= 0))) {
        return sendJson(res, 400, { error: 'times must be a non-negative integer or "default"' });
      }
      if (!scripts.has(input.path)) scripts.set(input.path, { queue: [], dflt: null });
      const s = scripts.get(input.path);
      if (times === 0 || times === 'default') s.dflt = response;
      else for (let i = 0; i < times; i++) s.queue.push(response);
      return sendJson(res, 200, { ok: true, queued: s.queue.length, default: s.dflt !== null });
    }
    case 'GET /requests':
      return sendJson(res, 200, requests);
    case 'GET /connections':
      return sendJson(res, 200, { count: connCount });
    case 'POST /reset':
      requests = [];
      seq = 0;
      connCount = 0;
      scripts = new Map();
      return sendJson(res, 200, { ok: true });
    case 'POST /revoke_all':
      tokens.clear();
      return sendJson(res, 200, { ok: true });
    case 'POST /issue':
      return sendJson(res, 200, issueToken({ scope: input.scope }));
    case 'POST /fake':
      if (!fake) return sendJson(res, 404, { error: 'no --fake module loaded' });
      try {
        return sendJson(res, 200, fake.admin(input) || { ok: true });
      } catch (e) {
        return sendJson(res, 400, { error: String(e && e.message) });
      }
    case 'GET /ping':
      return sendJson(res, 200, { ok: true });
    default:
      return sendJson(res, 404, { error: 'not_found' });
  }
}

const admin = http.createServer((req, res) => {
  onAdminRequest(req, res).catch((err) => {
    process.stderr.write(`server.js: admin: ${err && err.stack}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: String(err) });
  });
});

// ---------------------------------------------------------------------------
// lifetime

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server.address().port));
  });
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => process.exit(0));

// Exit when the parent dies: we get re-parented (ppid changes) or it no longer exists.
const parent = process.ppid;
setInterval(() => {
  let gone = process.ppid !== parent;
  if (!gone) {
    try { process.kill(parent, 0); } catch (e) { gone = e.code === 'ESRCH'; }
  }
  if (gone) process.exit(0);
}, 300);

process.on('uncaughtException', (err) => {
  // Keep serving: one broken test exchange must not take the server down for the rest.
  process.stderr.write(`server.js: uncaught: ${err && err.stack}\n`);
});
process.stdout.on('error', () => {}); // the reader may be gone; nothing more is written

Promise.all([listen(main), listen(admin)]).then(([port, adminPort]) => {
  process.stdout.write(`${JSON.stringify({ port, admin_port: adminPort, pid: process.pid })}\n`);
}, (err) => fail(`listen: ${err.message}`));
