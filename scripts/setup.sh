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
.venv/bin/python -c "import fomm, torch; print(f'fomm {fomm.__version__} ready (torch {torch.__version__})')"
