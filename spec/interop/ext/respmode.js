// oidc-provider configuration for spec/interop/respmode_interop_spec.lua: response
// modes (form_post is built in) and JARM (features.jwtResponseModes).
// Loaded by spec/interop/provider.js --extend (see its header).
//
// Clients (redirect URIs and scopes as provider.js's: loopback, any port):
//   jarm-client   client_secret_basic, secret "jarm-secret", JARM responses signed
//                 ES256 (authorization_signed_response_alg)
//   form-client   client_secret_basic, secret "form-secret"
'use strict';

const LOOPBACK = ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'];
const base = {
  application_type: 'native',
  redirect_uris: LOOPBACK,
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'client_secret_basic',
};

module.exports = {
  clients: [
    { ...base, client_id: 'jarm-client', client_secret: 'jarm-secret', authorization_signed_response_alg: 'ES256' },
    { ...base, client_id: 'form-client', client_secret: 'form-secret' },
  ],

  configure(config) {
    config.features.jwtResponseModes = { enabled: true };
  },
};
