// Extension of spec/interop/provider.js for spec/interop/resource_interop_spec.lua
// (resource servers): RFC 8707 resource indicators whose resource servers get RFC 9068
// JWT access tokens, and a count of the introspection requests the provider received.
//
//   https://api.example.test/   JWT access tokens signed ES256, scopes api:read api:write,
//                                300 s
//   https://ps.example.test/    the same, signed PS256
// Any other resource is refused (invalid_target). Without `resource` a token is opaque
// (and introspectable: oidc-provider refuses to introspect JWT access tokens).
//
// GET /test/counts -> {"introspection": N}   POSTs to the introspection endpoint so far
// The ready line gets "resource_servers": { es256: URL, ps256: URL }.
'use strict';

const RESOURCE_SERVERS = {
  'https://api.example.test/': 'ES256',
  'https://ps.example.test/': 'PS256',
};

const counts = { introspection: 0 };

module.exports = {
  configure(config) {
    config.features.resourceIndicators = {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const alg = RESOURCE_SERVERS[resourceIndicator];
        if (!alg) {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'api:read api:write',
          audience: resourceIndicator,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    };
    return config;
  },

  setup(provider) {
    provider.use(async (koa, next) => {
      if (koa.method === 'GET' && koa.path === '/test/counts') {
        koa.body = counts;
        return;
      }
      if (koa.method === 'POST' && koa.path === '/token/introspection') counts.introspection += 1;
      await next();
    });
  },

  ready(line) {
    line.resource_servers = { es256: 'https://api.example.test/', ps256: 'https://ps.example.test/' };
  },
};
