#!/usr/bin/env bash
# The whole test suite: C core tests, then the busted specs. Ends with one
# line "N passed, N failed" adding both up (what CI reads).
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0

for t in build/test_*; do
  [ -x "$t" ] || continue
  out=$("$t" 2>&1); rc=$?
  echo "$out"
  line=$(echo "$out" | grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "$t: no summary line (exit $rc)"; failed=$((failed + 1)); continue
  fi
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
done

busted_log=$(mktemp)
busted -o utfTerminal "$@" 2>&1 | tee "$busted_log"
summary=$(grep -aE '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$busted_log" | tail -1)
rm -f "$busted_log"
if [ -z "$summary" ]; then
  echo "busted printed no summary"; failed=$((failed + 1))
else
  s=$(echo "$summary" | sed -E 's/.*\b([0-9]+) success.*/\1/')
  f=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  e=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
  passed=$((passed + s)); failed=$((failed + f + e))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
