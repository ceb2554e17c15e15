// oidc-provider configuration for spec/interop/rp_cert_dynamic_spec.lua: the OpenID RP
// certification tests of the Dynamic and Form Post profiles and the optional ones that
// need registration, request_uri, or claims from other sources. Loaded by
// spec/interop/provider.js --extend (see its header).
//
//   features.registration   open (no initial access token), as a Dynamic-profile OP is
//   features.requestObjects enabled (oidc-provider verifies signed request objects)
//   features.jwtUserinfo    enabled (userinfo_signed_response_alg can be registered)
//   HS256                   among the ID token algs (a client may register it)
//   request_uri             oidc-provider 9 dereferences only its own PAR URNs. A GET to the
//                           authorization endpoint whose request_uri is an http URL on
//                           127.0.0.1 has it fetched here (OIDC Core §6.2, RFC 9101 §5.2.3):
//                           a signed object goes on as `request=` (oidc-provider checks it
//                           with the client's registered keys and alg); an unsigned one
//                           (alg none) is read as its parameters (OIDC Core §6.3.2: an
//                           unsigned object's values weigh as query parameters). A
//                           client_id or response_type that differs from the query's, or a
//                           fetch that fails, answers 400 invalid_request_uri / _object.
//   claims provider         a second issuer, ISSUER/cp (its discovery document, an ES256
//                           JWKS, and /cp/claims: a distributed source answering a JWT to
//                           `Bearer <ready line's cp_access_token>`, 401 otherwise)
//   accounts                carol: `address` and `phone_number` aggregated (a JWT of ISSUER/cp
//                           in _claim_sources); dave: `phone_number` distributed (/cp/claims);
//                           eve: an aggregated source whose signature does not verify.
//                           Scopes `address` and `phone` ask for them.
// Ready line fields: cp_issuer, cp_access_token.
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

const CP_TOKEN = `cp-at-${crypto.randomBytes(12).toString('hex')}`;
const cpPair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const CP_KID = `cp-${crypto.randomBytes(4).toString('hex')}`;
const MAX_OBJECT = 64 * 1024;
let CP;

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// a claims source JWT of the claims provider (ES256)
function cpJwt(claims, { forge = false } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'ES256', kid: CP_KID, typ: 'JWT' })}.${b64({ iss: CP, iat: now, exp: now + 600, ...claims })}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: cpPair.privateKey, dsaEncoding: 'ieee-p1363' });
  if (forge) sig[0] ^= 1;
  return `${input}.${sig.toString('base64url')}`;
}

const SOURCES = {
  carol: () => ({
    _claim_names: { address: 'src1', phone_number: 'src1' },
    _claim_sources: { src1: { JWT: cpJwt({ address: { country: 'NZ', locality: 'Wellington' }, phone_number: '+64 4 555 0100' }) } },
  }),
  dave: () => ({
    _claim_names: { phone_number: 'src2' },
    _claim_sources: { src2: { endpoint: `${CP}/claims`, access_token: CP_TOKEN } },
  }),
  eve: () => ({
    _claim_names: { address: 'src1' },
    _claim_sources: { src1: { JWT: cpJwt({ address: { country: 'XX' } }, { forge: true }) } },
  }),
};

// GET a request object from a loopback http URL (the test's recording server)
function fetchObject(uri) {
  return new Promise((resolve, reject) => {
    let u;
    try { u = new URL(uri); } catch { reject(new Error('not a URL')); return; }
    if (u.protocol !== 'http:' || u.hostname !== '127.0.0.1') { reject(new Error('not a loopback http URL')); return; }
    const req = http.get(u, { timeout: 5000 }, (res) => {
      const chunks = [];
      let n = 0;
      res.on('data', (c) => {
        n += c.length;
        if (n > MAX_OBJECT) req.destroy(new Error('request object too large'));
        else chunks.push(c);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else resolve(Buffer.concat(chunks).toString('utf8').trim());
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function refuse(koa, error, description) {
  koa.status = 400;
  koa.body = { error, error_description: description };
  return true;
}

async function dereference(koa) {
  const q = koa.query;
  let object;
  try {
    object = await fetchObject(q.request_uri);
  } catch (e) {
    return refuse(koa, 'invalid_request_uri', `could not fetch request_uri: ${e.message}`);
  }
  const parts = object.split('.');
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return refuse(koa, 'invalid_request_object', 'the request object is not a JWT');
  }
  const params = { ...q };
  delete params.request_uri;
  if (header.alg === 'none') {
    if (parts.length !== 3 || parts[2] !== '') return refuse(koa, 'invalid_request_object', 'alg none with a signature');
    for (const [k, v] of Object.entries(payload)) {
      if (k === 'request' || k === 'request_uri') return refuse(koa, 'invalid_request_object', `${k} in the object`);
      if ((k === 'client_id' || k === 'response_type') && q[k] !== undefined && q[k] !== v) {
        return refuse(koa, 'invalid_request_object', `${k} differs from the query's`);
      }
      params[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  } else {
    params.request = object;
  }
  koa.querystring = new URLSearchParams(params).toString();
  return false;
}

module.exports = {
  configure(config, ctx) {
    CP = `${ctx.issuer}/cp`;
    config.features.registration = { enabled: true };
    config.features.requestObjects = { enabled: true };
    config.features.jwtUserinfo = { enabled: true };
    if (!config.enabledJWA.idTokenSigningAlgValues.includes('HS256')) config.enabledJWA.idTokenSigningAlgValues.push('HS256');
    config.claims = { ...config.claims, address: ['address'], phone: ['phone_number'] };
    for (const s of ['address', 'phone']) if (!config.scopes.includes(s)) config.scopes.push(s);
    const findAccount = config.findAccount;
    config.findAccount = async (c, sub, token) => {
      const account = await findAccount(c, sub, token);
      const more = SOURCES[sub];
      if (!more) return account;
      return { ...account, async claims(...args) { return { ...(await account.claims(...args)), ...more() }; } };
    };
    return config;
  },

  setup(provider) {
    provider.use(async (koa, next) => {
      if (koa.method === 'GET' && koa.path === '/cp/.well-known/openid-configuration') {
        koa.body = { issuer: CP, jwks_uri: `${CP}/jwks`, id_token_signing_alg_values_supported: ['ES256'] };
        return;
      }
      if (koa.method === 'GET' && koa.path === '/cp/jwks') {
        koa.body = { keys: [{ ...cpPair.publicKey.export({ format: 'jwk' }), kid: CP_KID, use: 'sig', alg: 'ES256' }] };
        return;
      }
      if (koa.method === 'GET' && koa.path === '/cp/claims') {
        if (koa.get('authorization') !== `Bearer ${CP_TOKEN}`) {
          koa.status = 401;
          koa.set('WWW-Authenticate', 'Bearer error="invalid_token"');
          return;
        }
        koa.type = 'application/jwt';
        koa.body = cpJwt({ phone_number: '+64 9 555 0199' });
        return;
      }
      if (koa.method === 'GET' && koa.path === '/auth' && typeof koa.query.request_uri === 'string'
          && koa.query.request_uri.startsWith('http://')) {
        if (await dereference(koa)) return;
      }
      await next();
    });
  },

  ready(line) {
    line.cp_issuer = CP;
    line.cp_access_token = CP_TOKEN;
  },
};
