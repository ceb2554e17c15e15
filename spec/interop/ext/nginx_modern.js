// Extension of spec/interop/provider.js for spec/nginx_modern_spec.lua: the modern-OAuth
// features that smartauth runs inside nginx (the ngx transport), on one provider.
//
//   DPoP (RFC 9449) with a nonceSecret and a nonce required in every proof, so that the
//   first request of a client at the token endpoint and at userinfo gets use_dpop_nonce
//   (as spec/interop/ext/dpop.js); PAR (RFC 9126); request objects (RFC 9101); token
//   exchange (RFC 8693), registered by spec/interop/ext/exchange.js's setup.
//
// Clients (redirect URI http://127.0.0.1/cb, any port: a native application's loopback):
//   ngx-dpop      client_secret_basic, secret "ngx-dpop-secret"; its access tokens must be
//                 DPoP-bound; client credentials, code, refresh
//   ngx-jar       private_key_jwt RS256 with its own key, which also signs its request
//                 objects (the private key's PEM file: the ready line's ngx_jar_key_file,
//                 its kid ngx_jar_kid)
//   exchange-client  as in ext/exchange.js (client_secret_basic, "exchange-secret")
//
// GET /test/counts -> {"token": N, "par": N, "userinfo": N}   requests so far
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const exchange = require('./exchange.js');

const kid = `ngx-jar-${crypto.randomBytes(6).toString('hex')}`;
const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' };
const counts = { token: 0, par: 0, userinfo: 0 };

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
};

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'ngx-dpop',
      client_secret: 'ngx-dpop-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      dpop_bound_access_tokens: true,
    },
    {
      ...base,
      client_id: 'ngx-jar',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      request_object_signing_alg: 'RS256',
      jwks: { keys: [publicJwk] },
    },
    exchange.clients.find((c) => c.client_id === 'exchange-client'),
  ],

  configure(config) {
    config.features.dPoP = {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    };
    config.features.pushedAuthorizationRequests = { enabled: true };
    config.features.requestObjects = { enabled: true };
    return config;
  },

  setup(provider, ctx) {
    exchange.setup(provider, ctx);
    provider.use(async (koa, next) => {
      if (koa.method === 'GET' && koa.path === '/test/counts') {
        koa.body = counts;
        return;
      }
      if (koa.path === '/token') counts.token += 1;
      if (koa.path === '/request') counts.par += 1;
      if (koa.path === '/me') counts.userinfo += 1;
      await next();
    });
  },

  ready(line, ctx) {
    const file = path.join(ctx.tmpDir, 'ngx-jar-key.pem');
    fs.writeFileSync(file, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    line.ngx_jar_key_file = file;
    line.ngx_jar_kid = kid;
  },
};
