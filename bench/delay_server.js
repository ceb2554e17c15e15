// Benchmark 2's token endpoint: answers every request after DELAY_MS with a
// fixed token response, and does nothing else (the spec helper server
// records every request, which caps it near 1,000 new connections/s: the
// benchmark would measure the server, not the client).
//   node bench/delay_server.js [DELAY_MS [WATCH_PID]]
// Listens on 127.0.0.1, port 0; prints {"port":N,"pid":P} on stdout. Exits on
// SIGTERM/SIGINT, when WATCH_PID (default: its parent) is gone, and after 15
// minutes in any case.
'use strict';
const http = require('http');

const delay = Number(process.argv[2] || 50);
const body = JSON.stringify({
  access_token: '2YotnFZFEjr1zCsicMWpAA-bench-token-0123456789',
  token_type: 'Bearer', expires_in: 3600, scope: 'api',
});
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    setTimeout(() => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    }, delay);
  });
});
server.keepAliveTimeout = 600000;
server.listen(0, '127.0.0.1', 1024, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port, pid: process.pid }) + '\n');
});
const parent = Number(process.argv[3] || process.ppid);
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => {
  try { process.kill(parent, 0); } catch (e) { stop(); }
}, 500).unref();
setTimeout(stop, 15 * 60 * 1000).unref();
