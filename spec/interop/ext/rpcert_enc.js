// oidc-provider configuration for the JWE tests of spec/interop/rp_cert_spec.lua (the
// OpenID RP certification ids rp-id_token-sig+enc, rp-id_token-sig+enc-a128kw,
// rp-userinfo-enc, rp-userinfo-sig+enc). Loaded by spec/interop/provider.js --extend
// (see its header).
//
// Clients (client_secret_basic, loopback redirect URIs, scopes as provider.js's):
//   rpenc-rsa     ID tokens signed RS256, then encrypted RSA-OAEP + A128CBC-HS256 to the
//                 client's RSA key (the test's own alg, RSA1_5, is never accepted)
//   rpenc-a128kw  ID tokens encrypted A128KW + A256CBC-HS512 with the key derived from its
//                 client secret (OIDC Core §10.2)
//   rpenc-dir     ID tokens encrypted dir + A256CBC-HS512 (the 64-byte key: SHA-512 of the
//                 client secret)
//   rpenc-uisig   UserInfo signed RS256, then encrypted ECDH-ES + A256GCM to the client's
//                 P-256 key
//   rpenc-ui      UserInfo encrypted and NOT signed, RSA-OAEP-256 + A128CBC-HS256 to the
//                 client's RSA key. oidc-provider always signs a JWT UserInfo answer, so
//                 this client gets plain JSON from it, and the middleware added in setup()
//                 encrypts that JSON object (jose's CompactEncrypt) as a provider that
//                 encrypts without signing would (OIDC Core §5.3.2 allows it).
// Every client secret is "rpenc-secret: %+ x/y" (characters that need encoding in a form;
// oidc-provider allows printable ASCII only). The private keys are written to tmpDir as PEM files, named on
// the ready line: rpenc_rsa_key_file, rpenc_ec_key_file.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const SECRET = 'rpenc-secret: %+ x/y';
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rpenc-rsa', use: 'enc' };
const ecJwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'rpenc-ec', use: 'enc' };

const base = {
  application_type: 'native',
  redirect_uris: ['http://127.0.0.1/cb', 'http://localhost/cb', 'http://[::1]/cb'],
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  client_secret: SECRET,
  token_endpoint_auth_method: 'client_secret_basic',
};

module.exports = {
  clients: [
    {
      ...base,
      client_id: 'rpenc-rsa',
      id_token_encrypted_response_alg: 'RSA-OAEP',
      id_token_encrypted_response_enc: 'A128CBC-HS256',
      jwks: { keys: [rsaJwk] },
    },
    {
      ...base,
      client_id: 'rpenc-a128kw',
      id_token_encrypted_response_alg: 'A128KW',
      id_token_encrypted_response_enc: 'A256CBC-HS512',
    },
    {
      ...base,
      client_id: 'rpenc-dir',
      id_token_encrypted_response_alg: 'dir',
      id_token_encrypted_response_enc: 'A256CBC-HS512',
    },
    {
      ...base,
      client_id: 'rpenc-uisig',
      userinfo_signed_response_alg: 'RS256',
      userinfo_encrypted_response_alg: 'ECDH-ES',
      userinfo_encrypted_response_enc: 'A256GCM',
      jwks: { keys: [ecJwk] },
    },
    {
      ...base,
      client_id: 'rpenc-ui',
      jwks: { keys: [rsaJwk] },
    },
  ],

  configure(config) {
    config.features.encryption = { enabled: true };
    config.features.jwtUserinfo = { enabled: true };
    const algs = ['RSA-OAEP', 'RSA-OAEP-256', 'ECDH-ES', 'A128KW', 'A256KW', 'dir'];
    config.enabledJWA.idTokenEncryptionAlgValues = algs;
    config.enabledJWA.userinfoEncryptionAlgValues = algs;
    return config;
  },

  setup(provider) {
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.oidc?.route !== 'userinfo' || ctx.status !== 200) return;
      if (ctx.oidc.client?.clientId !== 'rpenc-ui') return;
      const { CompactEncrypt } = await import('jose');
      const json = typeof ctx.body === 'string' ? ctx.body : JSON.stringify(ctx.body);
      ctx.body = await new CompactEncrypt(new TextEncoder().encode(json))
        .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256', kid: rsaJwk.kid })
        .encrypt(rsa.publicKey);
      ctx.type = 'application/jwt; charset=utf-8';
    });
  },

  ready(line, ctx) {
    const write = (name, key) => {
      const file = path.join(ctx.tmpDir, name);
      fs.writeFileSync(file, key.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      return file;
    };
    line.rpenc_rsa_key_file = write('rpenc-rsa-key.pem', rsa.privateKey);
    line.rpenc_ec_key_file = write('rpenc-ec-key.pem', ec.privateKey);
    line.rpenc_secret = SECRET;
  },
};
