// Benchmark 1, baseline (d): Node's openid-client (v6, on Node's fetch, which
// keeps connections alive) doing the same client_credentials grant.
//   NODE_EXTRA_CA_CERTS=CA node bench/client_openid.mjs URL
// Client authentication is client_secret_basic, as smartauth's default.
// A worker like bench/client_smartauth.lua: a count per line on stdin,
// "<seconds> <count> <cpu seconds>" back. Exits on end of input, and after 15 minutes.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [url] = process.argv.slice(2);
const issuer = new URL(url).origin;
const config = new client.Configuration(
  { issuer, token_endpoint: url }, 'bench-client', 'bench-secret',
  client.ClientSecretBasic('bench-secret'));
if (url.startsWith('http:')) client.allowInsecureRequests(config);

async function one() {
  const t = await client.clientCredentialsGrant(config);
  if (typeof t.access_token !== 'string') throw new Error('no access_token');
}
setTimeout(() => process.exit(1), 15 * 60 * 1000).unref();
for await (const line of readline.createInterface({ input: process.stdin })) {
  const n = Number(line);
  if (!Number.isInteger(n)) break;
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await one();
  const t1 = process.hrtime.bigint(), c1 = process.cpuUsage(c0);
  const cpu = (c1.user + c1.system) / 1e6;
  process.stdout.write(`${(Number(t1 - t0) / 1e9).toFixed(9)} ${n} ${cpu.toFixed(6)}\n`);
}
process.exit(0);
