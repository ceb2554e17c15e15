// oidc-provider configuration for spec/interop/jwe_interop_spec.lua: encrypted ID
// tokens and UserInfo answers (features.encryption) to clients whose public
// encryption keys are registered with them. Loaded by spec/interop/provider.js
// --extend (see its header).
//
// Clients (client_secret_basic, redirect URIs and scopes as provider.js's):
//   jwe-rsa     secret "jwe-secret"; ID tokens RSA-OAEP-256 + A256GCM; UserInfo signed
//               (RS256), then encrypted RSA-OAEP-256 + A256GCM
//   jwe-ec      secret "jwe-secret"; ID tokens ECDH-ES + A128CBC-HS256
//   jwe-ec-kw   secret "jwe-secret"; ID tokens ECDH-ES+A256KW + A256CBC-HS512
//   jwe-x25519  secret "jwe-secret"; ID tokens ECDH-ES+A128KW + A256GCM to an X25519 key
//               (RFC 8037); UserInfo signed RS256, then encrypted ECDH-ES + A128GCM
// The clients' key pairs are made here; the private keys are written to tmpDir as
// PEM files, named on the ready line: jwe_rsa_key_file, jwe_ec_key_file,
// jwe_x25519_key_file, and their kids jwe_rsa_kid, jwe_ec_kid, jwe_x25519_kid.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaKid = `enc-rsa-${crypto.randomBytes(4).toString('hex')}`;
const ecKid = `enc-ec-${crypto.randomBytes(4).toString('hex')}`;
const x25519 = crypto.generateKeyPairSync('x25519');
const xKid = `enc-x25519-${crypto.randomBytes(4).toString('hex')}`;
const xJwk = { ...x25519.publicKey.export({ format: 'jwk' }), kid: xKid, use: 'enc' };
const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: rsaKid, use: 'enc' };
const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: ecKid, use: 'enc' };

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  client_secret: 'jwe-secret',
  token_endpoint_auth_method: 'client_secret_basic',
};

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'jwe-rsa',
      id_token_encrypted_response_alg: 'RSA-OAEP-256',
      id_token_encrypted_response_enc: 'A256GCM',
      userinfo_signed_response_alg: 'RS256',
      userinfo_encrypted_response_alg: 'RSA-OAEP-256',
      userinfo_encrypted_response_enc: 'A256GCM',
      jwks: { keys: [rsaJwk] },
    },
    {
      ...base,
      client_id: 'jwe-ec',
      id_token_encrypted_response_alg: 'ECDH-ES',
      id_token_encrypted_response_enc: 'A128CBC-HS256',
      jwks: { keys: [ecJwk] },
    },
    {
      ...base,
      client_id: 'jwe-ec-kw',
      id_token_encrypted_response_alg: 'ECDH-ES+A256KW',
      id_token_encrypted_response_enc: 'A256CBC-HS512',
      jwks: { keys: [ecJwk] },
    },
    {
      ...base,
      client_id: 'jwe-x25519',
      id_token_encrypted_response_alg: 'ECDH-ES+A128KW',
      id_token_encrypted_response_enc: 'A256GCM',
      userinfo_signed_response_alg: 'RS256',
      userinfo_encrypted_response_alg: 'ECDH-ES',
      userinfo_encrypted_response_enc: 'A128GCM',
      jwks: { keys: [xJwk] },
    },
  ],

  configure(config) {
    config.features.encryption = { enabled: true };
    config.features.jwtUserinfo = { enabled: true };
    config.enabledJWA = config.enabledJWA || {};
    const algs = ['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A256KW'];
    config.enabledJWA.idTokenEncryptionAlgValues = algs;
    config.enabledJWA.userinfoEncryptionAlgValues = algs;
    return config;
  },

  ready(line, ctx) {
    const write = (name, key) => {
      const file = path.join(ctx.tmpDir, name);
      fs.writeFileSync(file, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      return file;
    };
    line.jwe_rsa_key_file = write('jwe-rsa-key.pem', rsa.privateKey);
    line.jwe_ec_key_file = write('jwe-ec-key.pem', ec.privateKey);
    line.jwe_rsa_kid = rsaKid;
    line.jwe_ec_kid = ecKid;
    line.jwe_x25519_key_file = write('jwe-x25519-key.pem', x25519.privateKey);
    line.jwe_x25519_kid = xKid;
  },
};
