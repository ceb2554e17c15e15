rockspec_format = "3.0"
package = "smartauth"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "OAuth 2.0 / OpenID Connect client for Lua 5.1-5.4 and LuaJIT with a C core",
  detailed = [[
Every grant, OpenID Connect, token caching and refresh, connection reuse on
libcurl, and presets for SmartFile, SmartConnect, SmartSense and SmartTask.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson",
  "luasocket", -- the loopback login listener and sleeping
}
-- Only libraries are checked, so Debian's multiarch curl headers need no
-- CURL_INCDIR: the compiler finds them on its default path.
external_dependencies = {
  CURL = { library = "curl" },
  CRYPTO = { library = "crypto" },
  HIREDIS = { library = "hiredis" },
}
-- compat-5.3.h (lua-compat53-dev), read by 5.1, 5.2 and LuaJIT builds only
-- (csrc/lcompat.h): Debian keeps it beside the 5.1 and 5.2 headers, and
-- luarocks puts this directory after the runtime's own.
local COMPAT53 = "/usr/include/lua5.1"
build = {
  type = "builtin",
  modules = {
    -- Three C modules, split by the libraries they link (a cached token
    -- from a file store never maps libcurl); shared helpers are compiled
    -- into each module that uses them. The Makefile lists the same sources.
    ["smartauth.core"] = {
      sources = {
        "csrc/lsmartauth.c", "csrc/lutil.c", "csrc/lcrypto.c", "csrc/lkey.c",
        "csrc/lstore.c", "csrc/lclock.c", "csrc/lconfig.c", "csrc/lsandbox_str.c", "csrc/laead.c",
        "csrc/sa_err.c", "csrc/buf.c", "csrc/clock.c", "csrc/crypto.c", "csrc/form.c",
        "csrc/ossl.c", "csrc/key.c", "csrc/key_gen.c", "csrc/key_jwk.c", "csrc/jws.c", "csrc/aead.c", "csrc/store_file.c",
        "csrc/jwe.c", "csrc/jwe_crypto.c",
        "csrc/key_x25519.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "csrc", "$(CRYPTO_INCDIR)", COMPAT53 },
      libdirs = { "$(CRYPTO_LIBDIR)" },
      libraries = { "crypto", "pthread" }, -- pthread: file writes off the frame
    },
    ["smartauth.core_http"] = {
      sources = {
        "csrc/lhttp.c", "csrc/lutil.c",
        "csrc/sa_err.c", "csrc/buf.c", "csrc/clock.c", "csrc/http.c",
        "csrc/http_setup.c", "csrc/http_resp.c", "csrc/http_ca.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "csrc", "$(CURL_INCDIR)", "$(CRYPTO_INCDIR)", COMPAT53 },
      libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)" },
      libraries = { "curl", "ssl", "crypto", "pthread" },
    },
    ["smartauth.core_redis"] = {
      sources = {
        "csrc/lredis.c", "csrc/lutil.c",
        "csrc/sa_err.c", "csrc/buf.c", "csrc/clock.c", "csrc/crypto.c", "csrc/aead.c", "csrc/store_redis.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "csrc", "$(HIREDIS_INCDIR)", "$(CRYPTO_INCDIR)", COMPAT53 },
      libdirs = { "$(HIREDIS_LIBDIR)", "$(CRYPTO_LIBDIR)" },
      libraries = { "hiredis", "crypto" },
    },
    ["smartauth"] = "lua/smartauth/init.lua",
    ["smartauth.clock"] = "lua/smartauth/clock.lua",
    ["smartauth.compat"] = "lua/smartauth/compat.lua",
    ["smartauth.config"] = "lua/smartauth/config.lua",
    ["smartauth.engine"] = "lua/smartauth/engine.lua",
    ["smartauth.errors"] = "lua/smartauth/errors.lua",
    ["smartauth.device"] = "lua/smartauth/device.lua",
    ["smartauth.flow"] = "lua/smartauth/flow.lua",
    ["smartauth.flow.browser"] = "lua/smartauth/flow/browser.lua",
    ["smartauth.flow.loopback"] = "lua/smartauth/flow/loopback.lua",
    ["smartauth.http"] = "lua/smartauth/http.lua",
    ["smartauth.json"] = "lua/smartauth/json.lua",
    ["smartauth.jwe"] = "lua/smartauth/jwe.lua",
    ["smartauth.jwks"] = "lua/smartauth/jwks.lua",
    ["smartauth.jwt"] = "lua/smartauth/jwt.lua",
    ["smartauth.oidc"] = "lua/smartauth/oidc.lua",
    ["smartauth.claims"] = "lua/smartauth/claims.lua",
    ["smartauth.resource"] = "lua/smartauth/resource.lua",
    ["smartauth.challenge"] = "lua/smartauth/challenge.lua",
    ["smartauth.token_cache"] = "lua/smartauth/token_cache.lua",
    ["smartauth.options"] = "lua/smartauth/options.lua",
    ["smartauth.presets"] = "lua/smartauth/presets.lua",
    ["smartauth.provider"] = "lua/smartauth/provider.lua",
    ["smartauth.schema"] = "lua/smartauth/schema.lua",
    ["smartauth.retry"] = "lua/smartauth/retry.lua",
    ["smartauth.store"] = "lua/smartauth/store.lua",
    ["smartauth.store.envelope"] = "lua/smartauth/store/envelope.lua",
    ["smartauth.store.file"] = "lua/smartauth/store/file.lua",
    ["smartauth.store.lock"] = "lua/smartauth/store/lock.lua",
    ["smartauth.store.memory"] = "lua/smartauth/store/memory.lua",
    ["smartauth.store.redis"] = "lua/smartauth/store/redis.lua",
    ["smartauth.store.shdict"] = "lua/smartauth/store/shdict.lua",
    ["smartauth.ngx.http"] = "lua/smartauth/ngx/http.lua",
    ["smartauth.ngx.transport"] = "lua/smartauth/ngx/transport.lua",
    ["smartauth.token"] = "lua/smartauth/token.lua",
    ["smartauth.api"] = "lua/smartauth/api.lua",
    ["smartauth.dpop"] = "lua/smartauth/dpop.lua",
    ["smartauth.authcode"] = "lua/smartauth/authcode.lua",
    ["smartauth.jarm"] = "lua/smartauth/jarm.lua",
    ["smartauth.client_auth"] = "lua/smartauth/client_auth.lua",
    ["smartauth.discovery"] = "lua/smartauth/discovery.lua",
    ["smartauth.mtls"] = "lua/smartauth/mtls.lua",
    ["smartauth.profile"] = "lua/smartauth/profile.lua",
    ["smartauth.register"] = "lua/smartauth/register.lua",
    ["smartauth.client_metadata"] = "lua/smartauth/client_metadata.lua",
    ["smartauth.resource_meta"] = "lua/smartauth/resource_meta.lua",
    ["smartauth.grant"] = "lua/smartauth/grant.lua",
    ["smartauth.exchange"] = "lua/smartauth/exchange.lua",
    ["smartauth.logout"] = "lua/smartauth/logout.lua",
    ["smartauth.transport"] = "lua/smartauth/transport.lua",
    ["smartauth.wire"] = "lua/smartauth/wire.lua",
    ["smartauth.vault"] = "lua/smartauth/vault.lua",
    ["smartauth.token_source"] = "lua/smartauth/token_source.lua",
    ["smartauth.url"] = "lua/smartauth/url.lua",
    ["smartauth.providers.smartconnect"] = "lua/smartauth/providers/smartconnect.lua",
    ["smartauth.providers.smartfile"] = "lua/smartauth/providers/smartfile.lua",
    ["smartauth.providers.smartsense"] = "lua/smartauth/providers/smartsense.lua",
    ["smartauth.providers.smarttask"] = "lua/smartauth/providers/smarttask.lua",
  },
  install = {
    bin = { smartauth = "bin/smartauth" },
  },
}
test = {
  type = "busted",
}
