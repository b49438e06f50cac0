# canary.istio — every target sets up what it needs (virtualenv, lab binaries, collection path).
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | md5sum | cut -c1-8)
COLLECTIONS := build/collections
# Outside the checkout: inside it, ansible-test would ask git, which ignores build/.
# What is not part of the collection (see galaxy.yml build_ignore) is not sanity-tested either, nor are
# Gateway API's files vendored unchanged (their style is upstream's; see their SOURCES file).
NOT_COLLECTION := ^(build|lab|tools|bench|tests/lab|tests/conformance/gateway_api/upstream|\.ci)/|^bookinfo/.*\.py$$|^Makefile$$
SANITY_DIR := $(HOME)/.cache/canary-istio-lab/sanity/ansible_collections/canary/istio
LAB_DIR ?= .lab/default
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLLECTIONS)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)


.PHONY: reliability-report demo system-deps setup venv binaries collection awx-collection test test-unit lint sanity lab-up lab-down demo bench build clean

setup: venv binaries collection system-deps awx-collection

# Debian packages the tests and lint need beyond what lab/provision.sh installs: Chromium for the
# screenshot tests, rsync for the sanity copy, Graphviz for mesh_topology's picture (bindep.txt),
# Alertmanager beside the lab's Prometheus and Java 17 for ansible-rulebook (docs/events.md).
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v dot >/dev/null || missing="$$missing graphviz"; \
	  command -v rsync >/dev/null || missing="$$missing rsync"; \
	  command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	  command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	  if [ -n "$$missing" ]; then echo "[setup] installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

venv: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

binaries: venv
	$(PY) -m lab provision

# The collection's link in build/collections, and the bytecode of the repository's own Python: every module
# process, lab process and test run reads it, also where PYTHONDONTWRITEBYTECODE stops Python writing it
# (0.32 -> 0.26 s per module process on the lab; ansible-playbook compiles the collection's plugins itself).
collection: venv
	@$(PY) -m tests.helpers.collection >/dev/null
	@$(PY) -m compileall -q -j 0 plugins lab bookinfo tests tools bench >/dev/null

# awx.awx from the Ansible community package on PyPI, for checking awx/ against its modules' argument specs.
awx-collection: venv
	@$(PY) -m tests.helpers.awx_collection >/dev/null

# The traffic tests (then the event tests) and the others side by side, each on labs of their own (tools/test_streams.py).
test: setup
	$(PY) tools/test_streams.py

test-unit: venv collection
	$(PY) -m pytest -m unit

lint: setup sanity
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ansible-lint --offline
	$(PY) tools/yaml_duplicates.py roles playbooks

# ansible-test needs a real ansible_collections/<ns>/<name> tree (it resolves symlinks) and
# an offline get-pip (see tools/get_pip_offline.py).
sanity: venv system-deps
	@mkdir -p ~/.ansible/test/cache
	@for v in 24_2 24_3 25_0 25_1; do cp tools/get_pip_offline.py ~/.ansible/test/cache/get_pip_$$v.py; done
	@rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)
	@git ls-files -co --exclude-standard | grep -vE '$(NOT_COLLECTION)' | rsync -a --files-from=- . $(SANITY_DIR)/
	cd $(SANITY_DIR) && $(CURDIR)/$(VENV)/bin/ansible-test sanity --local --python 3.11 --color no $(SANITY_ARGS)

# The canary on the local lab, end to end, analysed (DEMO_CANARY=faulty|slow; DEMO_INTERACTIVE=1 asks at the prompts).
demo: setup
	$(PY) -m lab.demo

# Re-measures the figures in docs/reliability.md (and .zh-CN.md) from a real test run.
reliability-report: setup
	$(PY) -m tests.reliability.report

lab-up: setup
	$(PY) -m lab --dir $(LAB_DIR) up --dataplane

lab-down: venv
	$(PY) -m lab --dir $(LAB_DIR) down

# Benchmarks against kubernetes.core on a lab of their own (build/bench-lab); kubernetes.core comes
# from PyPI's ansible package in ~/.cache/canary-istio-lab/bench-venv, made here when missing.
# Prints a table and writes docs/performance.md and docs/performance.zh-CN.md. BENCH_RUNS=N for fewer rounds.
# Its decisions section (no lab; python -m bench --only decisions) simulates 10^4 releases per scenario and
# writes docs/decisions.md and docs/decisions.zh-CN.md; BENCH_REPLICATIONS=N for fewer.
bench: setup
	$(PY) -m bench

build: venv
	@mkdir -p build/dist
	$(VENV)/bin/ansible-galaxy collection build --force --output-path build/dist

clean:
	rm -rf build
