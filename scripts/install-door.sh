#!/usr/bin/env bash
# Install the real request-path "doors" the door tests scrape, each into its own cached venv apart from
# llmobs' .venv (their pins must not leak into the project): the vLLM router (PyPI `vllm-router`, the Rust
# router shipped as an extension module) and the LiteLLM proxy (`litellm[proxy]`).
set -euo pipefail
PY="${PYTHON:-python3}"
CACHE="$HOME/.cache/llmobs"

install_venv() {  # venv, import check, pip requirement...
  local venv="$1" check="$2"
  shift 2
  if [ -f "$venv/.llmobs-ready" ] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "door venv ready at $venv"
    return
  fi
  echo "installing $* into $venv"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "$@"
  "$venv/bin/python" -c "$check"
  touch "$venv/.llmobs-ready"
}

# Pinned: the door parsers are checked against pages captured from these versions (tests/fixtures/README.md),
# and LiteLLM changes its start-up rules between releases. A venv of another version is reinstalled.
ROUTER_VERSION=0.1.17
LITELLM_VERSION=1.108.7
install_venv "${LLMOBS_ROUTER_VENV:-$CACHE/router-venv}" \
  "import vllm_router_rs, importlib.metadata as m; assert m.version('vllm-router') == '$ROUTER_VERSION'" \
  "vllm-router==$ROUTER_VERSION"
# LITELLM_LOCAL_MODEL_COST_MAP: importing the proxy would otherwise fetch a price list from the internet.
LITELLM_LOCAL_MODEL_COST_MAP=True install_venv "${LLMOBS_LITELLM_VENV:-$CACHE/litellm-venv}" \
  "import litellm.proxy.proxy_server, prometheus_client, importlib.metadata as m; assert m.version('litellm') == '$LITELLM_VERSION'" \
  "litellm[proxy]==$LITELLM_VERSION" prometheus_client
