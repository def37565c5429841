#!/usr/bin/env bash
# Creates .venv/ in the repository root with a CPU build of torch and sim2real (editable, with dev tools).
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
# The CPU build of torch first, so the package's torch range is already satisfied (no CUDA download).
# Elsewhere, point TORCH_INDEX_URL at PyTorch's CPU wheel index (https://download.pytorch.org/whl/cpu).
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
