// Extension of spec/interop/provider.js for spec/nginx_resource_spec.lua and
// spec/nginx_login_spec.lua (the nginx examples): RFC 8707 resource indicators whose
// resource server gets RFC 9068 JWT access tokens signed RS256 (the benchmark's alg),
// a count of the introspection requests, and a client for the login site.
//
//   https://rs.example.test/   JWT access tokens signed RS256, scopes api:read api:write, 300 s
// Any other resource is refused (invalid_target). Without `resource` a token is opaque
// (and introspectable: oidc-provider refuses to introspect JWT access tokens).
//
// Client "nginx-site": client_secret_basic, secret "nginx-site-secret", authorization code
// (PKCE) and refresh tokens, loopback redirect URIs http://127.0.0.1/cb on any port.
//
// GET /test/counts -> {"introspection": N, "token": N}   POSTs so far
// The ready line gets "resource_server": URL.
'use strict';

const RESOURCE = 'https://rs.example.test/';
const counts = { introspection: 0, token: 0 };

module.exports = {
  clients: [{
    application_type: 'native',
    client_id: 'nginx-site',
    client_secret: 'nginx-site-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: ['http://127.0.0.1/cb'],
    post_logout_redirect_uris: ['http://127.0.0.1/bye'],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  }],

  configure(config) {
    config.features.resourceIndicators = {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'api:read api:write',
          audience: RESOURCE,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
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
      if (koa.method === 'POST' && koa.path === '/token') counts.token += 1;
      await next();
    });
  },

  ready(line) {
    line.resource_server = RESOURCE;
  },
};
