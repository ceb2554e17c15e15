#!/usr/bin/env bash
# Benchmark 1, baseline (b): the curl command, one process (and so one new
# connection, and the system CA store loaded) per token, as a shell script
# does it. A worker like bench/client_smartauth.lua: a count per line on
# stdin, "<seconds> <count>" back.
#   bash bench/curl_worker.sh URL CA_FILE
url=$1 ca=$2
while read -r n; do
  [[ $n =~ ^[0-9]+$ ]] || break
  s=${EPOCHREALTIME/./}
  for ((i = 0; i < n; i++)); do
    curl -sS -f --max-time 10 -o /dev/null -u bench-client:bench-secret \
      -H "Accept: application/json" -d grant_type=client_credentials \
      --cacert "$ca" "$url" || exit 1
  done
  e=${EPOCHREALTIME/./}
  d=$((e - s))
  printf "%d.%06d %d\n" $((d / 1000000)) $((d % 1000000)) "$n"
done
