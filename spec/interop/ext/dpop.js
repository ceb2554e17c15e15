// DPoP (RFC 9449) for spec/interop/dpop_interop_spec.lua: features.dPoP with a
// nonceSecret and every proof required to carry a nonce (so the first request of a
// client always gets use_dpop_nonce, at the token endpoint and at userinfo), and a
// confidential client whose access tokens must be DPoP-bound.
'use strict';

const crypto = require('node:crypto');

module.exports = {
  clients: [
    {
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/cb'],
      response_types: ['code'],
      client_id: 'dpop-client',
      client_secret: 'dpop-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
      dpop_bound_access_tokens: true,
    },
  ],
  configure(config) {
    config.features.dPoP = {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    };
    // JWT access tokens for one test resource, so that a resource server can check
    // the DPoP binding (cnf.jkt) of a token this provider issued.
    config.features.resourceIndicators = {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== 'https://api.example/dpop') {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'api:read api:write',
          audience: resourceIndicator,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    };
  },
};
