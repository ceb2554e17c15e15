// Extension of spec/interop/provider.js for mutual TLS (RFC 8705), used by
// spec/interop/mtls_interop_spec.lua with --tls-cert/--tls-key/--tls-ca.
//
// The spec writes mtls-ext.json next to the --tls-ca file:
//   { "subject_dn": "CN=client-a",             // tls_client_auth's registered subject
//     "self_signed_pem": "-----BEGIN ..." }    // self_signed_tls_client_auth's certificate
//
// Clients (every one gets certificate-bound access tokens):
//   mtls-ca-client     tls_client_auth, tls_client_auth_subject_dn = subject_dn
//   mtls-self-client   self_signed_tls_client_auth, jwks = the self-signed certificate's
//                      public key with its x5c (oidc-provider matches x5t#S256)
//   mtls-basic-client  client_secret_basic "mtls-basic-secret" (a client certificate
//                      only binds its tokens)
//   all also: authorization_code and refresh_token with the usual loopback redirect URIs
//
// The discovery document gets mtls_endpoint_aliases: token, introspection, revocation and
// userinfo under /mtls/..., the device authorization endpoint under its own path (an alias
// may name the conventional endpoint). As where the aliases live on a host of their own
// that alone asks for certificates, a request carrying a client certificate to the
// conventional token, introspection, revocation or userinfo path is refused (400
// invalid_request): a client that speaks mTLS must have used the alias.
//
// GET /api/whoami is a resource server (RFC 8705 §3): the Bearer token is looked up in
// oidc-provider's store (client-credentials and user access tokens) and, when bound
// (x5t#S256), the TLS client certificate of the request must have that thumbprint;
// 200 { client_id, sub, x5t } or 401 with WWW-Authenticate.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ALIASED = {
  '/mtls/token': '/token',
  '/mtls/token/introspection': '/token/introspection',
  '/mtls/token/revocation': '/token/revocation',
  '/mtls/me': '/me',
};
const CONVENTIONAL = new Set(Object.values(ALIASED));

const thumbprint = (pem) => crypto.createHash('sha256')
  .update(new crypto.X509Certificate(pem).raw).digest('base64url');

function specData(ctx) {
  if (!ctx.opts.tlsCa) throw new Error('ext/mtls.js: needs --tls-ca (and mtls-ext.json next to it)');
  return JSON.parse(fs.readFileSync(path.join(path.dirname(ctx.opts.tlsCa), 'mtls-ext.json'), 'utf8'));
}

const common = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb'],
  response_types: ['code'],
  grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
  tls_client_certificate_bound_access_tokens: true,
};

module.exports = {
  configure(config, ctx) {
    const data = specData(ctx);
    const self = new crypto.X509Certificate(data.self_signed_pem);
    config.clients.push(
      {
        ...common,
        client_id: 'mtls-ca-client',
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_subject_dn: data.subject_dn,
      },
      {
        ...common,
        client_id: 'mtls-self-client',
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        jwks: {
          keys: [{
            ...self.publicKey.export({ format: 'jwk' }),
            use: 'sig',
            x5c: [self.raw.toString('base64')],
          }],
        },
      },
      {
        ...common,
        client_id: 'mtls-basic-client',
        client_secret: 'mtls-basic-secret',
        token_endpoint_auth_method: 'client_secret_basic',
      },
    );
    config.clientAuthMethods = [
      'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
      'tls_client_auth', 'self_signed_tls_client_auth',
    ];
    config.features.mTLS = {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      getCertificate: (kctx) => ctx.tlsPeerCertificate(kctx),
      // verified against --tls-ca by node's TLS server (which asks, never rejects)
      certificateAuthorized: (kctx) => kctx.req.socket.authorized === true,
      certificateSubjectMatches(kctx, property, expected) {
        const pem = ctx.tlsPeerCertificate(kctx);
        if (!pem || property !== 'tls_client_auth_subject_dn') return false;
        // node prints a subject one RDN per line, in certificate order
        return new crypto.X509Certificate(pem).subject.split('\n').join(',') === expected;
      },
    };
    return config;
  },

  setup(provider, ctx) {
    provider.use(async (kctx, next) => {
      const cert = ctx.tlsPeerCertificate(kctx);
      if (kctx.path === '/api/whoami') {
        const m = /^Bearer ([\w.~+/-]+=*)$/.exec(kctx.get('authorization') || '');
        let token;
        if (m) {
          token = await provider.ClientCredentials.find(m[1])
            ?? await provider.AccessToken.find(m[1]);
        }
        let why;
        if (!token || token.isExpired) why = 'unknown or expired token';
        else if (token['x5t#S256'] && (!cert || thumbprint(cert) !== token['x5t#S256'])) {
          why = 'the client certificate is not the one the token is bound to';
        }
        if (why) {
          kctx.status = 401;
          kctx.set('WWW-Authenticate', `Bearer error="invalid_token", error_description="${why}"`);
          kctx.body = { error: 'invalid_token', error_description: why };
          return;
        }
        kctx.body = { client_id: token.clientId, sub: token.accountId, x5t: token['x5t#S256'] };
        return;
      }
      if (ALIASED[kctx.path]) {
        kctx.path = ALIASED[kctx.path];
      } else if (cert && CONVENTIONAL.has(kctx.path)) {
        kctx.status = 400;
        kctx.body = {
          error: 'invalid_request',
          error_description: 'mutual TLS requests go to the mtls_endpoint_aliases',
        };
        return;
      }
      await next();
      if (kctx.path === '/.well-known/openid-configuration' && kctx.body
          && typeof kctx.body === 'object') {
        const base = ctx.issuer;
        kctx.body.mtls_endpoint_aliases = {
          token_endpoint: `${base}/mtls/token`,
          introspection_endpoint: `${base}/mtls/token/introspection`,
          revocation_endpoint: `${base}/mtls/token/revocation`,
          userinfo_endpoint: `${base}/mtls/me`,
          device_authorization_endpoint: kctx.body.device_authorization_endpoint,
        };
      }
    });
  },
};
