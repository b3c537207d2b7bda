#!/usr/bin/env bash
# What the browser test (tests/serve/test_browser.py) needs: Debian's chromium, driven by
# Playwright's Python package (no `playwright install`: no browser download), and gradio.
# Idempotent and quick when everything is present. Usage: scripts/ci-browser-setup.sh [VENV]
set -euo pipefail
venv="${1:-.venv}"
if ! command -v chromium >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium
fi
check='import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("playwright", "gradio", "gradio_client")))'
if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    "$venv/bin/pip" install -q "gradio>=5" playwright
fi
echo "browser test setup: $(chromium --version 2>/dev/null || echo 'chromium missing')," \
     "gradio $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("gradio"))')"
