#!/usr/bin/env bash
# Creates .venv and installs fomm with its test dependencies. Safe to run again.
#
# torch is installed first and pinned (TORCH_SPEC) so that pip does not resolve the package's
# `torch>=2.1` range to a multi-GB CUDA build on machines that only need the CPU. On a GPU
# machine, set TORCH_SPEC to the build you want (or install torch into .venv yourself first).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
torch_spec=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "$torch_spec"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"

# The web app's browser test drives Debian's Chromium (a browser build downloaded by a tool is not
# to be had everywhere), the live window's test a virtual X display, and the no-network test
# watches a run with strace. Installed only where asked for (CI, or FOMM_BROWSER_TESTS=1), as root
# on Debian; the tests skip themselves without them.
if [ -n "${CI:-}${FOMM_BROWSER_TESTS:-}" ] && [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v Xvfb >/dev/null || missing+=(xvfb)
    command -v strace >/dev/null || missing+=(strace)
    if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
                || echo "setup.sh: warning: could not install ${missing[*]}; the browser/window tests will be skipped" >&2
        fi
    fi
fi
.venv/bin/python -c "import fomm, torch; print(f'fomm {fomm.__version__} ready (torch {torch.__version__})')"
