#!/usr/bin/env bash
# Set up (with the test extras) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k daemon
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"
