// Extension of spec/interop/provider.js for the FAPI 2.0 Security Profile, used by
// spec/interop/fapi_interop_spec.lua with --tls-cert/--tls-key/--tls-ca (https issuer).
//
// oidc-provider runs with features.fapi { enabled, profile: '2.0' } for every client (PKCE
// required even of confidential clients, redirect_uri required, request objects' nbf/exp),
// pushed authorization requests required, and mutual TLS: tls_client_auth and
// certificate-bound access tokens (features.mTLS, as ext/mtls.js).
//
// Clients (authorization_code and refresh_token; response type code only; loopback
// redirect URIs; every token bound to the TLS client certificate of the request):
//   fapi-pkjwt-client  private_key_jwt, ES256 key made here (its private half in the ready
//                      line's fapi_key_file, PEM PKCS#8, kid fapi_kid); ID tokens PS256
//   fapi-mtls-client   tls_client_auth, tls_client_auth_subject_dn "CN=fapi-client" (the spec
//                      makes that certificate with helpers/certs.lua); ID tokens ES256
//
// GET /api/whoami is a resource server (RFC 8705 §3): the Bearer token is looked up in
// oidc-provider's store and, when bound (x5t#S256), the request's TLS client certificate
// must have that thumbprint; 200 { client_id, sub, x5t } or 401 with WWW-Authenticate.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const SUBJECT_DN = 'CN=fapi-client';
const kid = `fapi-${crypto.randomBytes(6).toString('hex')}`;
const pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' };

const thumbprint = (pem) => crypto.createHash('sha256')
  .update(new crypto.X509Certificate(pem).raw).digest('base64url');

const common = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  tls_client_certificate_bound_access_tokens: true,
};

module.exports = {
  clients: [
    {
      ...common,
      client_id: 'fapi-pkjwt-client',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'PS256',
      jwks: { keys: [publicJwk] },
    },
    {
      ...common,
      // sender-constrained by DPoP instead of the certificate
      client_id: 'fapi-dpop-client',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      id_token_signed_response_alg: 'PS256',
      jwks: { keys: [publicJwk] },
      tls_client_certificate_bound_access_tokens: false,
      dpop_bound_access_tokens: true,
    },
    {
      ...common,
      client_id: 'fapi-mtls-client',
      token_endpoint_auth_method: 'tls_client_auth',
      tls_client_auth_subject_dn: SUBJECT_DN,
      id_token_signed_response_alg: 'ES256',
    },
  ],

  configure(config, ctx) {
    if (!ctx.opts.tlsCert || !ctx.opts.tlsCa) throw new Error('ext/fapi.js: needs --tls-cert/--tls-key/--tls-ca');
    config.features.fapi = { enabled: true, profile: '2.0' };
    config.features.dPoP = { enabled: true };
    config.features.pushedAuthorizationRequests = { enabled: true, requirePushedAuthorizationRequests: true };
    config.clientAuthMethods = ['client_secret_basic', 'private_key_jwt', 'none', 'tls_client_auth'];
    config.features.mTLS = {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: (kctx) => ctx.tlsPeerCertificate(kctx),
      // verified against --tls-ca by node's TLS server (which asks, never rejects)
      certificateAuthorized: (kctx) => kctx.req.socket.authorized === true,
      certificateSubjectMatches(kctx, property, expected) {
        const pem = ctx.tlsPeerCertificate(kctx);
        if (!pem || property !== 'tls_client_auth_subject_dn') return false;
        return new crypto.X509Certificate(pem).subject.split('\n').join(',') === expected;
      },
    };
    return config;
  },

  setup(provider, ctx) {
    provider.use(async (kctx, next) => {
      if (kctx.path !== '/api/whoami') {
        await next();
        return;
      }
      const cert = ctx.tlsPeerCertificate(kctx);
      const m = /^Bearer ([\w.~+/-]+=*)$/.exec(kctx.get('authorization') || '');
      const token = m ? await provider.AccessToken.find(m[1]) : undefined;
      let why;
      if (!token || token.isExpired) why = 'unknown or expired token';
      else if (!token['x5t#S256']) why = 'the token is not bound to a certificate';
      else if (!cert || thumbprint(cert) !== token['x5t#S256']) {
        why = 'the client certificate is not the one the token is bound to';
      }
      if (why) {
        kctx.status = 401;
        kctx.set('WWW-Authenticate', `Bearer error="invalid_token", error_description="${why}"`);
        kctx.body = { error: 'invalid_token', error_description: why };
        return;
      }
      kctx.body = { client_id: token.clientId, sub: token.accountId, x5t: token['x5t#S256'] };
    });
  },

  ready(line, ctx) {
    const file = path.join(ctx.tmpDir, 'fapi-key.pem');
    fs.writeFileSync(file, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    line.fapi_key_file = file;
    line.fapi_kid = kid;
    line.fapi_subject_dn = SUBJECT_DN;
  },
};
