#!/usr/bin/env bash
# Quick start: set everything up, then run the daemon on a throwaway local
# mailbox with sample multilingual support mail and print what it tagged.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/warningshot demo "$@"
