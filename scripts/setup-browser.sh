#!/usr/bin/env bash
# Install what the browser test (tests/test_server_web.py) needs: Debian's chromium, and
# playwright-python into the venv (its own browser download, `playwright install`, is never used).
set -euo pipefail
VENV="${VENV:-.venv}"
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    "$VENV/bin/pip" install -q "playwright==1.65.2"
fi
