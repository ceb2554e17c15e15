// oidc-provider configuration for spec/interop/authreq_interop_spec.lua: RFC 9126 PAR,
// RFC 9101 request objects and RFC 8707 resource indicators with JWT access tokens.
// Loaded by spec/interop/provider.js --extend (see its header).
//
// Clients (redirect URIs and scopes as provider.js's):
//   par-client   client_secret_basic, secret "par-secret", must push its requests
//                (require_pushed_authorization_requests)
//   jar-client   private_key_jwt with its own RS256 key, which also signs its request
//                objects; the private key's PEM file is the ready line's
//                authreq_key_file, its kid authreq_kid
// Resource servers: https://api.example/ (scopes api:read api:write, JWT access tokens
// whose aud is the resource); any other resource is invalid_target.
// Ready line fields: authreq_key_file, authreq_kid, authreq_resource.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const RESOURCE = 'https://api.example/';
const kid = `jar-${crypto.randomBytes(6).toString('hex')}`;
const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' };

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
};

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'par-client',
      client_secret: 'par-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      require_pushed_authorization_requests: true,
    },
    {
      ...base,
      client_id: 'jar-client',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      request_object_signing_alg: 'RS256',
      jwks: { keys: [publicJwk] },
    },
  ],

  configure(config) {
    config.features.pushedAuthorizationRequests = { enabled: true };
    config.features.requestObjects = { enabled: true };
    config.features.resourceIndicators = {
      enabled: true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'api:read api:write',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    };
    return config;
  },

  ready(line, ctx) {
    const file = path.join(ctx.tmpDir, 'authreq-key.pem');
    fs.writeFileSync(file, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    line.authreq_key_file = file;
    line.authreq_kid = kid;
    line.authreq_resource = RESOURCE;
  },
};
