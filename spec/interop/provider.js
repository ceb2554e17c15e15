#!/usr/bin/env node
// Interop harness: a real, certified OpenID Provider (the npm package `oidc-provider`,
// pinned in package.json / package-lock.json) listening on 127.0.0.1 only.
//
//   node spec/interop/provider.js [PORT] [--access-token-ttl=S] [--id-token-ttl=S]
//                                        [--refresh-token-ttl=S] [--ready-timeout=S]
//                                        [--stderr-file=PATH] [--extend=FILE]
//                                        [--tls-cert=PEM --tls-key=PEM [--tls-ca=PEM]]
//
// --extend=FILE names a module (CommonJS) that adds to the test provider, so that a
// feature's spec can turn on what it needs without touching this file:
//   module.exports = {
//     clients: [ ... ],                       // more clients (added to CLIENTS)
//     configure(config, ctx) { ... },         // edit the configuration in place (or return
//                                             // a new one); ctx = { issuer, tmpDir, opts,
//                                             // Provider, interactionPolicy }
//     setup(provider, ctx) { ... },           // after construction (registerGrantType, events)
//     ready(readyLine, ctx) { ... },          // add fields to the ready line
//   };
// --tls-cert/--tls-key serve the provider over https (the issuer is https://127.0.0.1:PORT).
// The server asks for a client certificate and does not reject any: oidc-provider checks it
// (features.mTLS.getCertificate reads it from the socket; see tlsPeerCertificate below).
// --tls-ca names the CA of client certificates the server trusts (for tls_client_auth).
//
// When ready it prints exactly one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT,"admin_port":N,"pid":N,
//    "pkjwt_key_file":"/tmp/.../pkjwt-key.pem","pkjwt_kid":"...","pkjwt_alg":"RS256",
//    "kids":[...],"clients":{...}}
// Everything else (oidc-provider's notices and warnings) goes to stderr.
//
// It exits on SIGTERM/SIGINT, when its parent process dies (polled every 300 ms), or when
// it could not get ready within --ready-timeout seconds (default 15). --stderr-file names the
// file its stderr was redirected to: it is removed when the parent died (nobody reads it then).
//
// Admin listener (plain http, another random 127.0.0.1 port):
//   GET  /health                 -> {"ok":true,"issuer":...,"kids":[...],"generation":N}
//   POST /rotate                 -> new signing keys (new kids) for RS256/PS256, ES256, EdDSA;
//                                   the old keys disappear from the JWKS.
//   POST /rotate?keep_previous=1 -> new keys sign, the previous keys stay published after them.
// oidc-provider reads `jwks` only at construction, so rotation builds a new Provider
// instance with the same issuer, clients, cookie keys and storage (a process-wide in-memory
// adapter) and swaps it in behind the same listening http server: sessions, grants, codes
// and tokens issued before the rotation stay valid.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');

// oidc-provider prints its NOTICEs with console.info, i.e. on stdout: keep stdout for the
// single ready line.
const toStderr = (...args) => console.error(...args);
console.info = toStderr;
console.log = toStderr;
console.debug = toStderr;

// ---------------------------------------------------------------------------------------
// arguments

const opts = {
  port: 0,
  accessTokenTTL: 3600,
  idTokenTTL: 3600,
  refreshTokenTTL: 14 * 24 * 3600,
  readyTimeout: 15,
  stderrFile: undefined,
  extend: undefined,
  tlsCert: undefined,
  tlsKey: undefined,
  tlsCa: undefined,
};
for (const arg of process.argv.slice(2)) {
  let m;
  if (/^\d+$/.test(arg)) opts.port = Number(arg);
  else if ((m = /^--port=(\d+)$/.exec(arg))) opts.port = Number(m[1]);
  else if ((m = /^--access-token-ttl=(\d+)$/.exec(arg))) opts.accessTokenTTL = Number(m[1]);
  else if ((m = /^--id-token-ttl=(\d+)$/.exec(arg))) opts.idTokenTTL = Number(m[1]);
  else if ((m = /^--refresh-token-ttl=(\d+)$/.exec(arg))) opts.refreshTokenTTL = Number(m[1]);
  else if ((m = /^--ready-timeout=(\d+)$/.exec(arg))) opts.readyTimeout = Number(m[1]);
  else if ((m = /^--stderr-file=(.+)$/.exec(arg))) opts.stderrFile = m[1];
  else if ((m = /^--extend=(.+)$/.exec(arg))) opts.extend = path.resolve(m[1]);
  else if ((m = /^--tls-cert=(.+)$/.exec(arg))) opts.tlsCert = m[1];
  else if ((m = /^--tls-key=(.+)$/.exec(arg))) opts.tlsKey = m[1];
  else if ((m = /^--tls-ca=(.+)$/.exec(arg))) opts.tlsCa = m[1];
  else {
    console.error(`provider.js: unknown argument ${arg}`);
    process.exit(2);
  }
}

const readyTimer = setTimeout(() => {
  console.error(`provider.js: not ready after ${opts.readyTimeout} s, giving up`);
  process.exit(1);
}, opts.readyTimeout * 1000);

// ---------------------------------------------------------------------------------------
// cleanup and lifetime

let tmpDir;
const servers = [];
let exiting = false;
function shutdown(code) {
  if (exiting) return;
  exiting = true;
  for (const s of servers) {
    try { s.close(); s.closeAllConnections?.(); } catch { /* ignore */ }
  }
  if (tmpDir) {
    try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.on('SIGHUP', () => shutdown(0));
process.on('exit', () => {
  if (tmpDir) {
    try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});
process.stdout.on('error', () => { /* parent went away; the ppid poll ends us */ });

// process.ppid is a snapshot in Node 20, so also read the live value from /proc.
const initialPpid = process.ppid;
function parentAlive() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) !== initialPpid) return false;
  } catch { /* no /proc: fall back to kill(0) */ }
  try {
    process.kill(initialPpid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}
setInterval(() => {
  if (parentAlive()) return;
  if (opts.stderrFile) {
    try { fs.unlinkSync(opts.stderrFile); } catch { /* ignore */ }
  }
  shutdown(0);
}, 300).unref();

// ---------------------------------------------------------------------------------------
// storage shared by every Provider instance (survives key rotation)

const store = new Map(); // key -> { value, exp (ms epoch) | undefined }
const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest',
]);
function sget(key) {
  const e = store.get(key);
  if (!e) return undefined;
  if (e.exp !== undefined && e.exp <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e.value;
}
function sset(key, value, expiresIn) {
  store.set(key, {
    value,
    exp: typeof expiresIn === 'number' ? Date.now() + (expiresIn + 60) * 1000 : undefined,
  });
}
setInterval(() => {
  const now = Date.now();
  for (const [k, e] of store) if (e.exp !== undefined && e.exp <= now) store.delete(k);
}, 60_000).unref();

class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    sset(key, structuredClone(payload), expiresIn);
    if (this.model === 'Session' && payload.uid) sset(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) sset(`userCode:${payload.userCode}`, id, expiresIn);
    if (payload.grantId && GRANTABLE.has(this.model)) {
      const gk = `grant:${payload.grantId}`;
      const members = sget(gk) ?? new Set();
      members.add(key);
      sset(gk, members, undefined);
    }
  }

  async find(id) {
    const v = sget(this.key(id));
    return v === undefined ? undefined : structuredClone(v);
  }

  async findByUid(uid) {
    const id = sget(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = sget(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const v = sget(this.key(id));
    if (v) v.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const gk = `grant:${grantId}`;
    const members = sget(gk);
    if (members) for (const key of members) store.delete(key);
    store.delete(gk);
  }
}

// ---------------------------------------------------------------------------------------
// keys

const rnd = (n = 6) => crypto.randomBytes(n).toString('hex');
let generation = 0;

function signingKeys() {
  generation += 1;
  const g = generation;
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ed = crypto.generateKeyPairSync('ed25519').privateKey;
  // No `alg` on the RSA key so that it serves both RS256 and PS256.
  return [
    { ...rsa.export({ format: 'jwk' }), kid: `rsa-g${g}-${rnd()}`, use: 'sig' },
    { ...ec.export({ format: 'jwk' }), kid: `ec-g${g}-${rnd()}`, use: 'sig', alg: 'ES256' },
    { ...ed.export({ format: 'jwk' }), kid: `ed-g${g}-${rnd()}`, use: 'sig', alg: 'EdDSA' },
  ];
}

let currentKeys = signingKeys();

// private_key_jwt client key (RS256); the private half goes to a PEM file for the specs.
const pkjwtKid = `pkjwt-${rnd()}`;
const pkjwtPair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const pkjwtPublicJwk = {
  ...pkjwtPair.publicKey.export({ format: 'jwk' }), kid: pkjwtKid, alg: 'RS256', use: 'sig',
};
tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smartauth-op-'));
const pkjwtKeyFile = path.join(tmpDir, 'pkjwt-key.pem');
fs.writeFileSync(pkjwtKeyFile, pkjwtPair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
const pkjwtJwkFile = path.join(tmpDir, 'pkjwt-key.jwk.json');
fs.writeFileSync(
  pkjwtJwkFile,
  JSON.stringify({ ...pkjwtPair.privateKey.export({ format: 'jwk' }), kid: pkjwtKid, alg: 'RS256', use: 'sig' }),
  { mode: 0o600 },
);

const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

// ---------------------------------------------------------------------------------------
// clients

const LOOPBACK_REDIRECTS = ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'];
const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const CONFIDENTIAL_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials', DEVICE];
const PUBLIC_GRANTS = ['authorization_code', 'refresh_token', DEVICE];

// Summary (also in the ready line's "clients"):
//   basic-client       client_secret_basic  secret "s3cret: %+ x"   (must be form-urlencoded
//                                            in the Basic header, RFC 6749 2.3.1)
//   post-client        client_secret_post   secret "p0st: %+ &=x"
//   public-client      none, PKCE S256 required
//   jwt-secret-client  client_secret_jwt    secret "jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
//   pkjwt-client       private_key_jwt      RS256 key in pkjwt_key_file (PEM PKCS#8), kid pkjwt_kid
//   es256-client / eddsa-client / ps256-client: client_secret_basic, secrets "es256-secret",
//                      "eddsa-secret", "ps256-secret", ID tokens signed ES256 / EdDSA / PS256
//   device-client      none, device flow
// Every client: ID tokens RS256 unless said otherwise; redirect URIs http://127.0.0.1/cb,
// http://localhost/cb, http://[::1]/cb on any port; scopes openid, email (email,
// email_verified), profile (name), offline_access, api:read, api:write. Confidential clients
// may also use client_credentials (e.g. scope=api:read) and the device flow.
// Note: oidc-provider accepts client_secret_basic and client_secret_post interchangeably for a
// client registered with either (it does not enforce the registered one of the two).
//
// "native" makes the port of a loopback redirect URI irrelevant (RFC 8252 7.3): a client
// registered with http://127.0.0.1/cb may use http://127.0.0.1:54321/cb.
const base = {
  application_type: 'native',
  redirect_uris: LOOPBACK_REDIRECTS,
  response_types: ['code'],
};

const CLIENTS = [
  {
    ...base,
    client_id: 'basic-client',
    client_secret: 's3cret: %+ x',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'post-client',
    client_secret: 'p0st: %+ &=x',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'public-client',
    token_endpoint_auth_method: 'none',
    grant_types: PUBLIC_GRANTS,
  },
  {
    ...base,
    client_id: 'jwt-secret-client',
    client_secret: 'jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    token_endpoint_auth_method: 'client_secret_jwt',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'pkjwt-client',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: { keys: [pkjwtPublicJwk] },
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'es256-client',
    client_secret: 'es256-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'eddsa-client',
    client_secret: 'eddsa-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'EdDSA',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'ps256-client',
    client_secret: 'ps256-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'PS256',
    grant_types: CONFIDENTIAL_GRANTS,
  },
  {
    ...base,
    client_id: 'device-client',
    token_endpoint_auth_method: 'none',
    grant_types: PUBLIC_GRANTS,
  },
];

const extension = opts.extend ? require(opts.extend) : {};
for (const c of extension.clients ?? []) CLIENTS.push(c);

// The client certificate of an https request, PEM, or undefined (for features.mTLS).
function tlsPeerCertificate(ctx) {
  const sock = ctx.req.socket;
  if (typeof sock.getPeerX509Certificate !== 'function') return undefined;
  const cert = sock.getPeerX509Certificate();
  return cert ? cert.toString() : undefined;
}

// ---------------------------------------------------------------------------------------
// provider configuration

async function findAccount(ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: `${sub}@example.com`,
        email_verified: true,
        name: sub.charAt(0).toUpperCase() + sub.slice(1),
      };
    },
  };
}

function makeConfiguration(interactionPolicy) {
  // Clients are "native" (for loopback redirect URIs on any port), and oidc-provider makes
  // every authorization request of a native client show the consent page again
  // (check native_client_prompt). Drop that check so that single sign-on and prompt=none
  // work like with any other client: consent is asked once per client and session.
  const policy = interactionPolicy.base();
  policy.get('consent').checks.remove('native_client_prompt');
  return {
    interactions: { policy },
    adapter: MapAdapter,
    clients: CLIENTS.map((c) => structuredClone(c)),
    jwks: { keys: currentKeys.map((k) => structuredClone(k)) },
    cookies: { keys: cookieKeys },
    findAccount,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read', 'api:write'],
    // Scope-requested claims also go into the ID token, not only to userinfo.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: { enabled: true },
      deviceFlow: { enabled: true },
      userinfo: { enabled: true },
      claimsParameter: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      userinfoSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      clientAuthSigningAlgValues: ['HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES256', 'EdDSA'],
    },
    // PKCE (S256 only in oidc-provider 9) is required for public clients: the default.
    // Refresh tokens: issued whenever the client may use the refresh_token grant, with or
    // without the offline_access scope, and they do not die with the browser session.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    // Every refresh rotates the refresh token; presenting a used one revokes the grant.
    rotateRefreshToken: true,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: () => opts.accessTokenTTL,
      AuthorizationCode: 60,
      ClientCredentials: () => opts.accessTokenTTL,
      DeviceCode: 600,
      IdToken: () => opts.idTokenTTL,
      RefreshToken: () => opts.refreshTokenTTL,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
  };
}

// ---------------------------------------------------------------------------------------
// servers

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function main() {
  const { default: Provider, interactionPolicy } = await import('oidc-provider');

  let handler = null;
  const tls = opts.tlsCert ? {
    cert: fs.readFileSync(opts.tlsCert),
    key: fs.readFileSync(opts.tlsKey),
    ca: opts.tlsCa ? fs.readFileSync(opts.tlsCa) : undefined,
    requestCert: true,
    rejectUnauthorized: false,
  } : undefined;
  const onRequest = (req, res) => {
    if (!handler) {
      res.writeHead(503);
      res.end();
      return;
    }
    handler(req, res);
  };
  const opServer = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  servers.push(opServer);
  const port = await listen(opServer, opts.port);
  const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const ctx = {
    issuer, tmpDir, opts, Provider, interactionPolicy, tlsPeerCertificate,
  };

  function build() {
    let config = makeConfiguration(interactionPolicy);
    if (extension.configure) config = extension.configure(config, ctx) ?? config;
    const provider = new Provider(issuer, config);
    // Behind our own https server the request is already https: no proxy headers to trust.
    provider.on('server_error', (c, err) => console.error('oidc-provider server_error:', err));
    if (extension.setup) extension.setup(provider, ctx);
    return provider.callback();
  }
  handler = build();

  const kids = () => currentKeys.map((k) => k.kid);

  const adminServer = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    req.resume();
    req.on('end', () => {
      try {
        if (req.method === 'GET' && url.pathname === '/health') {
          json(res, 200, { ok: true, issuer, kids: kids(), generation });
        } else if (req.method === 'POST' && url.pathname === '/rotate') {
          const previous = currentKeys;
          const fresh = signingKeys();
          const keep = ['1', 'true', 'yes'].includes(url.searchParams.get('keep_previous') ?? '');
          currentKeys = keep ? [...fresh, ...previous] : fresh;
          handler = build();
          json(res, 200, {
            ok: true, kids: kids(), previous_kids: previous.map((k) => k.kid), generation,
          });
        } else {
          json(res, 404, { error: 'not_found' });
        }
      } catch (err) {
        console.error('admin error:', err);
        json(res, 500, { error: 'server_error', error_description: String(err.message) });
      }
    });
  });
  servers.push(adminServer);
  const adminPort = await listen(adminServer, 0);

  clearTimeout(readyTimer);
  const ready = {
    issuer,
    port,
    admin_port: adminPort,
    pid: process.pid,
    pkjwt_key_file: pkjwtKeyFile,
    pkjwt_jwk_file: pkjwtJwkFile,
    pkjwt_kid: pkjwtKid,
    pkjwt_alg: 'RS256',
    kids: kids(),
    clients: Object.fromEntries(CLIENTS.map((c) => [c.client_id, {
      client_id: c.client_id,
      client_secret: c.client_secret,
      token_endpoint_auth_method: c.token_endpoint_auth_method,
      id_token_signed_response_alg: c.id_token_signed_response_alg ?? 'RS256',
      grant_types: c.grant_types,
    }])),
  };
  if (extension.ready) extension.ready(ready, ctx);
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}

main().catch((err) => {
  console.error('provider.js: failed to start:', err);
  shutdown(1);
});
