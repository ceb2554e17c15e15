#!/usr/bin/env bash
# Installs what `make bench` needs and is missing (Debian 12): nginx (the
# token server), LuaSocket and LuaSec (baseline c), curl (baseline b), Node
# and the pinned openid-client (baseline d, from package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || pkgs+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || pkgs+=(libnginx-mod-http-echo) # benchmark 6
lua5.4 -e 'require "socket"' 2>/dev/null || pkgs+=(lua-socket)
lua5.4 -e 'require "ssl"' 2>/dev/null || pkgs+=(lua-sec)
command -v curl >/dev/null 2>&1 || pkgs+=(curl)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
if ((${#pkgs[@]})); then
  echo "bench/setup.sh: installing ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [ ! -f node_modules/openid-client/package.json ]; then
  echo "bench/setup.sh: npm ci"
  npm ci --no-audit --no-fund >/dev/null
fi
