// Interop extension (node spec/interop/provider.js --extend=spec/interop/ext/exchange.js) for
// spec/interop/exchange_interop_spec.lua: token exchange (RFC 8693) and a JWT bearer grant
// (RFC 7523) registered with provider.registerGrantType, RP-initiated logout with a
// post_logout_redirect_uri, and a client whose UserInfo answers are signed (RS256).
//
//   exchange-client   client_secret_basic, secret "exchange-secret": code, refresh, the
//                     token-exchange and jwt-bearer grants; post_logout_redirect_uris
//                     http://127.0.0.1:9/logged-out
//   signed-ui-client  client_secret_basic, secret "signed-ui-secret": UserInfo as a JWT
//
// Token exchange: the subject token (and the actor token) must be access tokens this
// provider issued and that are still valid (AccessToken.find); audience and resource must be
// among AUDIENCES (else invalid_target); scope must be within the subject token's (else
// invalid_scope). The new access token keeps the subject's account and grant, and carries
// the audience. Errors are RFC 8693 §2.2.2's: invalid_request for anything wrong with the
// tokens or their types.
//
// JWT bearer: the assertion is an ES256 JWS by the key in the ready line's
// "jwt_bearer_key_file" (PEM, PKCS#8), iss "jwt-bearer-issuer", aud the issuer or the token
// endpoint, exp in the future; the access token is issued to its sub.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const AUDIENCES = new Set(['https://backend.example.test', 'urn:example:backend']);
const LOGGED_OUT = 'http://127.0.0.1:9/logged-out';
const ASSERTION_ISSUER = 'jwt-bearer-issuer';

const bearerKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb'],
  response_types: ['code'],
};

function fail(ctx, status, error, description) {
  ctx.status = status;
  ctx.body = { error, error_description: description };
}

// The parameters of a request to the token endpoint (oidc-provider parsed them; repeated
// ones come as arrays only for the names registered as "dupes").
function param(ctx, name) {
  return ctx.oidc.params[name];
}

function list(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

async function tokenExchange(ctx) {
  const { provider } = ctx.oidc;
  const client = ctx.oidc.client;
  const subjectToken = param(ctx, 'subject_token');
  const subjectType = param(ctx, 'subject_token_type');
  const actorToken = param(ctx, 'actor_token');
  const actorType = param(ctx, 'actor_token_type');
  if (!subjectToken || !subjectType) {
    return fail(ctx, 400, 'invalid_request', 'subject_token and subject_token_type are required');
  }
  if (subjectType !== ACCESS_TOKEN_TYPE) {
    return fail(ctx, 400, 'invalid_request', 'unsupported subject_token_type');
  }
  if (actorToken && !actorType) {
    return fail(ctx, 400, 'invalid_request', 'actor_token_type is required with actor_token');
  }
  if (!actorToken && actorType) {
    return fail(ctx, 400, 'invalid_request', 'actor_token_type without actor_token');
  }
  const requested = param(ctx, 'requested_token_type');
  if (requested && requested !== ACCESS_TOKEN_TYPE) {
    return fail(ctx, 400, 'invalid_request', 'unsupported requested_token_type');
  }
  const subject = await provider.AccessToken.find(subjectToken);
  if (!subject) return fail(ctx, 400, 'invalid_request', 'subject_token is not valid');
  let act;
  if (actorToken) {
    if (actorType !== ACCESS_TOKEN_TYPE) {
      return fail(ctx, 400, 'invalid_request', 'unsupported actor_token_type');
    }
    const actor = await provider.AccessToken.find(actorToken);
    if (!actor) return fail(ctx, 400, 'invalid_request', 'actor_token is not valid');
    act = { sub: actor.accountId, client_id: actor.clientId };
  }
  const targets = [...list(param(ctx, 'audience')), ...list(param(ctx, 'resource'))];
  for (const t of targets) {
    if (!AUDIENCES.has(t)) return fail(ctx, 400, 'invalid_target', 'unknown audience or resource');
  }
  const have = new Set((subject.scope || '').split(' ').filter(Boolean));
  const scope = param(ctx, 'scope') ?? subject.scope;
  for (const s of (scope || '').split(' ').filter(Boolean)) {
    if (!have.has(s)) return fail(ctx, 400, 'invalid_scope', 'scope exceeds the subject token\'s');
  }
  const at = new provider.AccessToken({
    accountId: subject.accountId,
    client,
    grantId: subject.grantId,
    gty: 'token_exchange',
    scope: scope || undefined,
    extra: act ? { act, may_act_seen: true } : undefined,
  });
  if (targets.length === 1) at.aud = targets[0];
  else if (targets.length > 1) at.aud = targets;
  const value = await at.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: at.expiration,
    scope: at.scope,
  };
  return undefined;
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function jwtBearer(ctx) {
  const { provider } = ctx.oidc;
  const assertion = param(ctx, 'assertion');
  if (!assertion) return fail(ctx, 400, 'invalid_request', 'assertion is required');
  const parts = String(assertion).split('.');
  if (parts.length !== 3) return fail(ctx, 400, 'invalid_grant', 'assertion is not a compact JWS');
  let header;
  let claims;
  try {
    header = b64json(parts[0]);
    claims = b64json(parts[1]);
  } catch {
    return fail(ctx, 400, 'invalid_grant', 'assertion is not a JWS');
  }
  if (header.alg !== 'ES256') return fail(ctx, 400, 'invalid_grant', 'assertion alg must be ES256');
  const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), {
    key: bearerKey.publicKey, dsaEncoding: 'ieee-p1363',
  }, Buffer.from(parts[2], 'base64url'));
  if (!ok) return fail(ctx, 400, 'invalid_grant', 'assertion signature does not verify');
  const now = Math.floor(Date.now() / 1000);
  const auds = list(claims.aud);
  if (claims.iss !== ASSERTION_ISSUER) return fail(ctx, 400, 'invalid_grant', 'assertion issuer is unknown');
  if (!auds.includes(provider.issuer) && !auds.includes(ctx.oidc.urlFor('token'))) {
    return fail(ctx, 400, 'invalid_grant', 'assertion audience is not this server');
  }
  if (typeof claims.exp !== 'number' || claims.exp <= now) {
    return fail(ctx, 400, 'invalid_grant', 'assertion expired');
  }
  if (typeof claims.sub !== 'string' || !claims.sub) {
    return fail(ctx, 400, 'invalid_grant', 'assertion has no sub');
  }
  const at = new provider.AccessToken({
    accountId: claims.sub,
    client: ctx.oidc.client,
    gty: 'jwt_bearer',
    scope: param(ctx, 'scope') || undefined,
  });
  const value = await at.save();
  ctx.body = {
    access_token: value, token_type: 'Bearer', expires_in: at.expiration, scope: at.scope,
  };
  return undefined;
}

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'exchange-client',
      client_secret: 'exchange-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE, JWT_BEARER],
      post_logout_redirect_uris: [LOGGED_OUT],
    },
    {
      ...base,
      client_id: 'signed-ui-client',
      client_secret: 'signed-ui-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      userinfo_signed_response_alg: 'RS256',
    },
  ],
  configure(config) {
    config.features.jwtUserinfo = { enabled: true };
    // The spec's browser (spec/helpers/oidc.lua) submits a page's first form with its
    // inputs: the confirmation page carries logout=yes as an input instead of a button.
    config.features.rpInitiatedLogout = {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><body>${
          form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>')}</body></html>`;
      },
    };
    return config;
  },
  setup(provider) {
    provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
      'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
      'requested_token_type', 'audience', 'resource', 'scope',
    ], ['audience', 'resource']);
    provider.registerGrantType(JWT_BEARER, jwtBearer, ['assertion', 'scope']);
  },
  ready(line, ctx) {
    const file = path.join(ctx.tmpDir, 'jwt-bearer-key.pem');
    fs.writeFileSync(file, bearerKey.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    line.jwt_bearer_key_file = file;
    line.jwt_bearer_issuer = ASSERTION_ISSUER;
    line.exchange_audiences = [...AUDIENCES];
    line.logged_out_uri = LOGGED_OUT;
  },
};
