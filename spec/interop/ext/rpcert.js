// oidc-provider configuration for spec/interop/rp_cert_spec.lua: the OpenID Foundation's
// RP certification tests that a real provider can play (the misbehaving ones run against
// fakes on the recording server). Loaded by spec/interop/provider.js --extend (see its header).
//
// Clients (loopback redirect URIs on any port, scopes as provider.js's):
//   rpcert-hybrid  client_secret_basic, secret "rpcert-hybrid-secret"; response types
//                  code, "code id_token" (hybrid) and id_token (implicit without an access
//                  token), for rp-response_type-*, rp-nonce-unless-code-flow
//   rpcert-hs256   client_secret_basic, ID tokens signed HS256 with its secret
//                  "rpcert-hs256-secret-0123456789-abcdefghij" (rp-id_token-sig-hs256)
//   rpcert-uisig   client_secret_basic, secret "rpcert-uisig-secret", UserInfo answered as a
//                  JWT signed RS256 (rp-userinfo-sig)
// Configuration: HS256 among the ID token algs; features.jwtUserinfo on.
'use strict';

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'client_secret_basic',
};

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'rpcert-hybrid',
      client_secret: 'rpcert-hybrid-secret',
      response_types: ['code', 'code id_token', 'id_token'],
      grant_types: ['authorization_code', 'implicit', 'refresh_token'],
    },
    {
      ...base,
      client_id: 'rpcert-hs256',
      client_secret: 'rpcert-hs256-secret-0123456789-abcdefghij',
      id_token_signed_response_alg: 'HS256',
    },
    {
      ...base,
      client_id: 'rpcert-uisig',
      client_secret: 'rpcert-uisig-secret',
      userinfo_signed_response_alg: 'RS256',
    },
  ],

  configure(config) {
    config.enabledJWA.idTokenSigningAlgValues.push('HS256');
    config.features.jwtUserinfo = { enabled: true };
    return config;
  },
};
