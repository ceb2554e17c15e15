// Extension of spec/interop/provider.js for spec/interop/register_interop_spec.lua and
// spec/interop/for_resource_spec.lua: dynamic client registration and a protected
// resource that points to its metadata from its 401s.
//
//   features.registration          enabled, a fixed initial access token (ready line:
//                                  "initial_access_token")
//   features.registrationManagement enabled, the registration access token rotated on
//                                  every update
//   features.resourceIndicators    one resource server, ISSUER/rs/api (opaque tokens, scopes
//                                  api:read api:write, 300 s); any other resource is refused
//   GET /.well-known/oauth-authorization-server   the discovery document (RFC 8414 name)
//   GET /rs/meta                   its RFC 9728 metadata (no well-known copy: a client finds
//                                  it through the 401's resource_metadata)
//   GET /rs/api[/...]              the resource: 401 `Bearer resource_metadata="..."` without
//                                  a valid token for it; /rs/api/admin needs api:write
//                                  (403 insufficient_scope, scope="api:write"); else 200 JSON
//                                  { ok, client_id, scope, path }
// Ready line: "initial_access_token", "resource", "resource_metadata".
'use strict';

const crypto = require('node:crypto');

const IAT = `iat-${crypto.randomBytes(12).toString('hex')}`;
let RESOURCE;
let META;

function challenge(koa, status, extra) {
  koa.status = status;
  koa.set('WWW-Authenticate', `Bearer ${extra}resource_metadata="${META}"`);
  koa.set('Cache-Control', 'no-store');
  koa.body = { error: status === 401 ? 'unauthorized' : 'forbidden' };
}

async function resource(koa, provider) {
  const m = /^Bearer ([^\s]+)$/.exec(koa.get('authorization') || '');
  if (!m) return challenge(koa, 401, '');
  const tok = (await provider.AccessToken.find(m[1])) || (await provider.ClientCredentials.find(m[1]));
  const aud = tok && (Array.isArray(tok.aud) ? tok.aud : [tok.aud]);
  if (!tok || tok.isExpired || !aud.includes(RESOURCE)) {
    return challenge(koa, 401, 'error="invalid_token", ');
  }
  const need = koa.path.startsWith('/rs/api/admin') ? 'api:write' : 'api:read';
  const scopes = (tok.scope || '').split(' ');
  if (!scopes.includes(need)) {
    return challenge(koa, 403, `error="insufficient_scope", scope="${need}", `);
  }
  koa.body = { ok: true, client_id: tok.clientId, scope: tok.scope, path: koa.path };
  return undefined;
}

module.exports = {
  configure(config, ctx) {
    RESOURCE = `${ctx.issuer}/rs/api`;
    META = `${ctx.issuer}/rs/meta`;
    config.features.registration = { enabled: true, initialAccessToken: IAT };
    config.features.registrationManagement = { enabled: true, rotateRegistrationAccessToken: true };
    config.features.resourceIndicators = {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== RESOURCE) {
          const { errors } = await import('oidc-provider');
          throw new errors.InvalidTarget();
        }
        return { scope: 'api:read api:write', audience: RESOURCE, accessTokenTTL: 300, accessTokenFormat: 'opaque' };
      },
    };
    return config;
  },

  setup(provider) {
    provider.use(async (koa, next) => {
      if (koa.method === 'GET' && koa.path === '/.well-known/oauth-authorization-server') {
        koa.path = '/.well-known/openid-configuration';
      } else if (koa.method === 'GET' && koa.path === '/rs/meta') {
        koa.body = {
          resource: RESOURCE,
          authorization_servers: [provider.issuer],
          scopes_supported: ['api:read'],
          bearer_methods_supported: ['header'],
        };
        return;
      } else if (koa.path === '/rs/api' || koa.path.startsWith('/rs/api/')) {
        await resource(koa, provider);
        return;
      }
      await next();
    });
  },

  ready(line) {
    line.initial_access_token = IAT;
    line.resource = RESOURCE;
    line.resource_metadata = META;
  },
};
