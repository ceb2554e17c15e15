#!/usr/bin/env bash
# One command from a fresh checkout: install, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
make demo
