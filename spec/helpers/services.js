// Stateful fakes of the four services smartauth has presets for, speaking the wire
// format their authentication documents describe (DESIGN.md, "The services it must
// speak to"), plus a generic OpenID provider and a resource server for the README's
// examples. Loaded by spec/helpers/server.js --fake; driven from spec/helpers/services.lua.
//
// Each service lives under a path prefix of the one server:
//   /sf   SmartFile: GET /sf/oauth2/authorize/ (a page showing the code when there is no
//         callback URL, else a redirect), POST /sf/oauth2/token/ (client_id and
//         client_secret in the form; authorization_code, refresh_token), API /sf/api/2/...
//         (Bearer header, access_token parameter, or HTTP Basic with an API key)
//   /sc   SmartConnect: POST /sc/token (grant_type=password, username, password,
//         client_id, client_secret in the form); answers token_type "bearer", no
//         refresh token, and no expires_in unless configured; API /sc/api/...
//   /ss   SmartSense: POST /ss/auth/oauth (client credentials, id and secret in HTTP
//         Basic only, Accept: application/json required); API /ss/v1/...
//   /st   SmartTask: OpenID Connect: discovery, JWKS, authorize (code, id_token, code
//         id_token; urn:ietf:wg:oauth:2.0:oob shows the code on a page), token, userinfo
//         (GET, Bearer) at /st/openid_connect/userinfo, revocation, end session
//   /idp  a generic OpenID provider (idp.example.com in the README): as /st plus device
//         authorization (approved at once), introspection and client credentials
//   /ex   a resource server (api.example.com) that accepts a live token of any service
//
// Tokens are random and checked: the API answers 401 to a token this fake did not issue
// or has revoked, the token endpoint answers invalid_grant to an unknown code or refresh
// token (or, with dead_refresh = "empty400"/"empty401", an empty-bodied 400/401).
//
// Admin (POST /fake on the admin port), JSON in and out:
//   { op = "setup", svc = "sf", config = {...} }   merge settings (credentials, expires_in,
//                                                  key_pem, kid, jwks, any_client: accept any
//                                                  non-empty credentials sent the documented
//                                                  way, ...) into a service
//   { op = "revoke_all", svc = "sf", dead_refresh = "invalid_grant"|"empty400"|"empty401" }
//                                                  every token of the service dies
//   { op = "live", svc = "sf" }                     -> { access = n, refresh = n } live counts
'use strict';

const crypto = require('crypto');

const SERVICES = {
  sf: { kind: 'smartfile', expires_in: 36000, refresh: true, rotate: true, scope: 'read write' },
  sc: { kind: 'smartconnect', expires_in: null, refresh: false, token_type: 'bearer' },
  ss: { kind: 'smartsense', expires_in: 3600, refresh: false },
  st: { kind: 'oidc', expires_in: 3600, refresh: true, rotate: true, sub: 'st-user-42',
        email: 'ada@smarttask.example' },
  idp: { kind: 'oidc', expires_in: 3600, refresh: true, rotate: true, device: true, sub: 'idp-user-7',
         email: 'ada@idp.example', clients: {} },
};
for (const s of Object.values(SERVICES)) s.dead_refresh = 'invalid_grant';

const access = new Map();   // access token -> { svc, scope, sub, exp }
const refreshes = new Map(); // refresh token -> { svc, scope, sub, client_id }
const codes = new Map();     // code -> { svc, client_id, redirect_uri, challenge, nonce, scope }
const devices = new Map();   // device_code -> { svc, client_id, scope }

function rnd(prefix) { return `${prefix}-${crypto.randomBytes(12).toString('hex')}`; }
function b64url(buf) { return Buffer.from(buf).toString('base64url'); }
function halfHash(v) { const d = crypto.createHash('sha256').update(v).digest(); return b64url(d.subarray(0, 16)); }
function now() { return Math.floor(Date.now() / 1000); }

function send(res, status, value, headers) {
  if (value === undefined) {
    res.writeHead(status, Object.assign({ 'Content-Length': 0 }, headers || {}));
    return res.end();
  }
  const body = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8');
  res.writeHead(status, Object.assign({
    'Content-Type': typeof value === 'string' ? 'text/html; charset=utf-8' : 'application/json',
    'Content-Length': body.length, 'Cache-Control': 'no-store',
  }, headers || {}));
  return res.end(body);
}

const oauthError = (res, status, error, description) =>
  send(res, status, description ? { error, error_description: description } : { error });

function issuerOf(rec, svc) { return `http://${rec.headers.host}/${svc}`; }

function signIdToken(rec, svc, s, claims) {
  if (!s.key_pem) throw new Error(`service ${svc} has no key_pem`);
  const header = { alg: 'RS256', typ: 'JWT', kid: s.kid };
  // A day of validity: the specs move the client's clock forward to expire access tokens,
  // and an ID token issued on a refresh must still be valid on that clock.
  const body = Object.assign({ iss: issuerOf(rec, svc), sub: s.sub, iat: now(), exp: now() + 86400 }, claims);
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(body))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), s.key_pem);
  return `${input}.${b64url(sig)}`;
}

function hasWord(s, w) { return ` ${s || ''} `.includes(` ${w} `); }

// A token response for one service, recording what it issued.
function issue(rec, svc, s, { scope, client_id, nonce, code, refresh = s.refresh, id_token = true }) {
  const at = rnd(`${svc}-at`);
  const exp = s.expires_in == null ? null : now() + s.expires_in;
  access.set(at, { svc, scope, sub: s.sub, exp });
  const t = { access_token: at, token_type: s.token_type || 'Bearer' };
  if (s.expires_in != null) t.expires_in = s.expires_in;
  if (refresh) {
    t.refresh_token = rnd(`${svc}-rt`);
    refreshes.set(t.refresh_token, { svc, scope, sub: s.sub, client_id });
  }
  if (scope !== undefined) t.scope = scope;
  if (s.kind === 'oidc' && id_token && hasWord(scope, 'openid')) {
    const claims = { aud: client_id, at_hash: halfHash(at), email: s.email };
    if (nonce) claims.nonce = nonce;
    if (code) claims.c_hash = halfHash(code);
    t.id_token = signIdToken(rec, svc, s, claims);
  }
  return t;
}

// Client authentication: which methods a service takes. Returns the client id or null.
function client(rec, s, methods) {
  const f = rec.form || {};
  if (s.any_client) return anyClient(rec, f, methods);
  if (methods.includes('basic') && rec.basic) {
    return rec.basic.user === s.client_id && rec.basic.pass === s.client_secret ? rec.basic.user : null;
  }
  if (methods.includes('post') && f.client_secret !== undefined) {
    return f.client_id === s.client_id && f.client_secret === s.client_secret ? f.client_id : null;
  }
  if (methods.includes('none') && f.client_id !== undefined && (s.public_clients || []).includes(f.client_id)) {
    return f.client_id;
  }
  return null;
}

// any_client (the README's fakes): any non-empty credentials, sent the documented way.
function anyClient(rec, f, methods) {
  if (methods.includes('basic') && rec.basic) return rec.basic.user && rec.basic.pass ? rec.basic.user : null;
  if (methods.includes('post') && f.client_secret !== undefined) return f.client_id && f.client_secret ? f.client_id : null;
  if (methods.includes('none') && f.client_id) return f.client_id;
  return null;
}

function bearer(rec) {
  const m = /^bearer\s+(\S+)\s*$/i.exec(rec.headers.authorization || '');
  return m ? m[1] : undefined;
}

function liveAccess(token, svc) {
  const a = token && access.get(token);
  if (!a || (svc && a.svc !== svc)) return null;
  if (a.exp !== null && a.exp < now()) return null;
  return a;
}

function unauthorized(res) {
  return send(res, 401, { error: 'invalid_token' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
}

function resource(rec, res, svc, s, extra) {
  let a = liveAccess(bearer(rec), svc);
  if (!a && extra) a = extra();
  if (!a) return unauthorized(res);
  return send(res, 200, { ok: true, service: s.kind, path: rec.path, sub: a.sub || null });
}

// The refresh_token grant, shared by the services that issue refresh tokens.
function refreshGrant(rec, res, svc, s, clientId) {
  const old = refreshes.get((rec.form || {}).refresh_token);
  if (!old || old.svc !== svc || old.client_id !== clientId) {
    if (s.dead_refresh === 'empty400') return send(res, 400);
    if (s.dead_refresh === 'empty401') return send(res, 401);
    return oauthError(res, 400, 'invalid_grant');
  }
  if (s.rotate) refreshes.delete(rec.form.refresh_token);
  const t = issue(rec, svc, s, { scope: old.scope, client_id: clientId, refresh: s.rotate });
  return send(res, 200, t);
}

function codeGrant(rec, res, svc, s, clientId) {
  const f = rec.form;
  const c = codes.get(f.code);
  codes.delete(f.code);
  if (!c || c.svc !== svc || c.client_id !== clientId) return oauthError(res, 400, 'invalid_grant');
  if ((c.redirect_uri || undefined) !== (f.redirect_uri || undefined)) return oauthError(res, 400, 'invalid_grant');
  if (c.challenge) {
    const v = f.code_verifier || '';
    if (b64url(crypto.createHash('sha256').update(v).digest()) !== c.challenge) {
      return oauthError(res, 400, 'invalid_grant', 'PKCE verification failed');
    }
  }
  return send(res, 200, issue(rec, svc, s, { scope: c.scope !== undefined ? c.scope : s.scope, client_id: clientId, nonce: c.nonce }));
}

function oobPage(code) {
  return `<!doctype html><html><body><p>Copy this code into your application:</p>` +
    `<code id="code">${code}</code></body></html>`;
}

const OOB = 'urn:ietf:wg:oauth:2.0:oob';

// GET authorize: a page with the code (no callback, or out of band), else a redirect.
function authorize(rec, res, svc, s, responseTypes) {
  const a = rec.args;
  if (!s.any_client && a.client_id !== s.client_id && !(s.public_clients || []).includes(a.client_id)) {
    return send(res, 400, oobPage('unknown client'));
  }
  const rt = a.response_type || '';
  if (!responseTypes.includes(rt)) return send(res, 400, oobPage(`unsupported response_type ${rt}`));
  const code = rnd(`${svc}-code`);
  codes.set(code, { svc, client_id: a.client_id, redirect_uri: a.redirect_uri, nonce: a.nonce,
    challenge: a.code_challenge_method === 'S256' ? a.code_challenge : undefined, scope: a.scope });
  const params = new URLSearchParams();
  if (hasWord(rt, 'code')) params.set('code', code);
  if (hasWord(rt, 'id_token')) {
    params.set('id_token', signIdToken(rec, svc, s, { aud: a.client_id, nonce: a.nonce, c_hash: hasWord(rt, 'code') ? halfHash(code) : undefined }));
  }
  if (a.state !== undefined) params.set('state', a.state);
  if (!a.redirect_uri || a.redirect_uri === OOB) return send(res, 200, oobPage(code));
  const sep = rt === 'code' ? (a.redirect_uri.includes('?') ? '&' : '?') : '#';
  return send(res, 302, undefined, { Location: `${a.redirect_uri}${sep}${params.toString()}` });
}

function tokenRequestOk(rec, res) {
  if (rec.method !== 'POST') { send(res, 405, { error: 'method_not_allowed' }); return false; }
  if (!rec.form) { oauthError(res, 400, 'invalid_request', 'form body expected'); return false; }
  return true;
}

// ------------------------------------------------------------------ services

function smartfile(rec, res, rest, s) {
  if (rest === '/oauth2/authorize/') return authorize(rec, res, 'sf', s, ['code']);
  if (rest === '/oauth2/token/') {
    if (!tokenRequestOk(rec, res)) return true;
    const id = client(rec, s, ['post']);
    if (!id) return oauthError(res, 400, 'invalid_client');
    const g = rec.form.grant_type;
    if (g === 'authorization_code') return codeGrant(rec, res, 'sf', s, id);
    if (g === 'refresh_token') return refreshGrant(rec, res, 'sf', s, id);
    return oauthError(res, 400, 'invalid_grant');
  }
  if (rest.startsWith('/api/2/')) {
    return resource(rec, res, 'sf', s, () => {
      const t = rec.args.access_token || (rec.form && rec.form.access_token);
      const byParam = liveAccess(t, 'sf');
      if (byParam) return byParam;
      const keyOk = rec.basic && (s.any_client ? rec.basic.user && rec.basic.pass
        : s.api_key && rec.basic.user === s.api_key && rec.basic.pass === s.api_password);
      if (keyOk) {
        return { sub: 'api-key' };
      }
      return null;
    });
  }
  return false;
}

function smartconnect(rec, res, rest, s) {
  if (rest === '/token') {
    if (!tokenRequestOk(rec, res)) return true;
    const f = rec.form;
    const id = client(rec, s, ['post']);
    if (!id) return oauthError(res, 400, 'invalid_client');
    if (f.grant_type !== 'password') return oauthError(res, 400, 'unsupported_grant_type');
    const ok = s.any_client ? f.username && f.password : f.username === s.username && f.password === s.password;
    if (!ok) return oauthError(res, 400, 'invalid_grant');
    return send(res, 200, issue(rec, 'sc', s, { client_id: id }));
  }
  if (rest.startsWith('/api/')) return resource(rec, res, 'sc', s);
  return false;
}

function smartsense(rec, res, rest, s) {
  if (rest === '/auth/oauth') {
    if (!tokenRequestOk(rec, res)) return true;
    if (!/(^|,)\s*application\/json\s*(;|,|$)/i.test(rec.headers.accept || '')) {
      return send(res, 406, '<p>Not Acceptable: send Accept: application/json</p>');
    }
    const id = client(rec, s, ['basic']);
    if (!id) return send(res, 401, { error: 'invalid_client' }, { 'WWW-Authenticate': 'Basic realm="smartsense"' });
    if (rec.form.grant_type !== 'client_credentials') return oauthError(res, 400, 'unsupported_grant_type');
    return send(res, 200, issue(rec, 'ss', s, { client_id: id, scope: rec.form.scope }));
  }
  if (rest.startsWith('/v1/')) return resource(rec, res, 'ss', s);
  return false;
}

function oidc(rec, res, rest, s, svc) {
  const iss = issuerOf(rec, svc);
  if (rest === '/.well-known/openid-configuration') {
    const doc = {
      issuer: iss,
      authorization_endpoint: `${iss}/oauth2/authorize`,
      token_endpoint: `${iss}/oauth2/token`,
      userinfo_endpoint: `${iss}/openid_connect/userinfo`,
      jwks_uri: `${iss}/oauth2/jwks`,
      revocation_endpoint: `${iss}/oauth2/revoke`,
      end_session_endpoint: `${iss}/logout`,
      response_types_supported: ['code', 'id_token', 'code id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'email', 'profile'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      code_challenge_methods_supported: ['S256'],
    };
    if (s.device) {
      doc.device_authorization_endpoint = `${iss}/oauth2/device`;
      doc.introspection_endpoint = `${iss}/oauth2/introspect`;
    }
    return send(res, 200, doc);
  }
  if (rest === '/oauth2/jwks') return send(res, 200, s.jwks || { keys: [] });
  if (rest === '/oauth2/authorize') return authorize(rec, res, svc, s, ['code', 'id_token', 'code id_token']);
  if (rest === '/openid_connect/userinfo') {
    if (rec.method !== 'GET') return send(res, 405, { error: 'method_not_allowed' });
    const a = liveAccess(bearer(rec), svc);
    if (!a) return unauthorized(res);
    return send(res, 200, { sub: a.sub, email: s.email, email_verified: true });
  }
  if (rest === '/oauth2/token') {
    if (!tokenRequestOk(rec, res)) return true;
    const id = client(rec, s, ['basic', 'post', 'none']);
    if (!id) return send(res, 401, { error: 'invalid_client' });
    const g = rec.form.grant_type;
    if (g === 'authorization_code') return codeGrant(rec, res, svc, s, id);
    if (g === 'refresh_token') return refreshGrant(rec, res, svc, s, id);
    if (g === 'client_credentials' && s.device && (rec.basic || rec.form.client_secret !== undefined)) {
      return send(res, 200, issue(rec, svc, s, { client_id: id, scope: rec.form.scope, refresh: false }));
    }
    if (g === 'urn:ietf:params:oauth:grant-type:device_code' && s.device) {
      const d = devices.get(rec.form.device_code);
      devices.delete(rec.form.device_code);
      if (!d || d.client_id !== id) return oauthError(res, 400, 'invalid_grant');
      return send(res, 200, issue(rec, svc, s, { scope: d.scope, client_id: id }));
    }
    return oauthError(res, 400, 'unsupported_grant_type');
  }
  if (rest === '/oauth2/revoke') {
    if (!tokenRequestOk(rec, res)) return true;
    if (!client(rec, s, ['basic', 'post', 'none'])) return send(res, 401, { error: 'invalid_client' });
    access.delete(rec.form.token);
    refreshes.delete(rec.form.token);
    return send(res, 200);
  }
  if (rest === '/oauth2/device' && s.device) {
    if (!tokenRequestOk(rec, res)) return true;
    const id = client(rec, s, ['basic', 'post', 'none']);
    if (!id) return send(res, 401, { error: 'invalid_client' });
    const dc = rnd('device');
    const user = crypto.randomBytes(4).toString('hex').toUpperCase();
    devices.set(dc, { svc, client_id: id, scope: rec.form.scope, user });
    return send(res, 200, { device_code: dc, user_code: user, verification_uri: `${iss}/device`,
      verification_uri_complete: `${iss}/device?user_code=${user}`, expires_in: 600, interval: 1 });
  }
  if (rest === '/oauth2/introspect' && s.device) {
    if (!tokenRequestOk(rec, res)) return true;
    const a = liveAccess(rec.form.token, svc);
    return send(res, 200, a ? { active: true, sub: a.sub, scope: a.scope } : { active: false });
  }
  if (rest === '/logout') return send(res, 200, '<p>signed out</p>');
  return false;
}

// server.js calls this for every request no script answered; false: not ours.
exports.handle = (rec, res) => {
  const m = /^\/(sf|sc|ss|st|idp|ex)(\/.*)?$/.exec(rec.path);
  if (!m) return false;
  const svc = m[1];
  const rest = m[2] || '/';
  const s = SERVICES[svc];
  let handled;
  if (svc === 'sf') handled = smartfile(rec, res, rest, s);
  else if (svc === 'sc') handled = smartconnect(rec, res, rest, s);
  else if (svc === 'ss') handled = smartsense(rec, res, rest, s);
  else if (svc === 'ex') handled = resource(rec, res, null, { kind: 'example' });
  else handled = oidc(rec, res, rest, s, svc);
  if (handled === false) send(res, 404, { error: 'not_found', path: rec.path });
  return true;
};

exports.admin = (input) => {
  const s = SERVICES[input.svc];
  if (!s) throw new Error(`unknown service ${input.svc}`);
  if (input.op === 'setup') {
    for (const [k, v] of Object.entries(input.config || {})) s[k] = v;
    if ('expires_in' in (input.config || {}) && input.config.expires_in === false) s.expires_in = null;
    return { ok: true };
  }
  if (input.op === 'revoke_all') {
    for (const [k, v] of access) if (v.svc === input.svc) access.delete(k);
    for (const [k, v] of refreshes) if (v.svc === input.svc) refreshes.delete(k);
    s.dead_refresh = input.dead_refresh || 'invalid_grant';
    return { ok: true };
  }
  if (input.op === 'live') {
    let a = 0, r = 0;
    for (const v of access.values()) if (v.svc === input.svc && (v.exp === null || v.exp >= now())) a++;
    for (const v of refreshes.values()) if (v.svc === input.svc) r++;
    return { access: a, refresh: r };
  }
  throw new Error(`unknown op ${input.op}`);
};
