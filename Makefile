# llmhost entry points. Two commands matter: `make lab` and `make test`.
# Each bootstraps what it needs (venv, Docker engine, base image) and is
# idempotent: a second run reuses everything.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
PY ?= python3
STAMP := $(VENV)/.llmhost-$(shell cat requirements.txt constraints.txt training/requirements.txt 2>/dev/null | sha256sum | cut -c1-16)
ROLES_WITH_MOLECULE := $(sort $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml)))
ROLE ?=
# The slowest scenarios first, so two at a time finish together (durations in the note).
MOLECULE_SLOW := vllm monitoring gateway teardown mini_gpt2_training
MOLECULE_ORDER := $(foreach r,$(MOLECULE_SLOW),$(filter $(r),$(ROLES_WITH_MOLECULE))) $(filter-out $(MOLECULE_SLOW),$(ROLES_WITH_MOLECULE))
JOBS ?= $(if $(ROLE),1,2)
export JOBS
# pytest workers: the unit tests on one more worker than cores (many tests wait on an
# ansible-playbook or a socket: on 2 cores, 3 workers took 516 s where 2 took 594 s).
# The lab tests run in one process: one module on one lab host, its tests in order.
UNIT_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
# make unit ROLE=x (and make test ROLE=x): the role's own test files and the conventions.
UNIT_TESTS = $(if $(ROLE),$(wildcard tests/test_$(ROLE)_*.py) tests/test_conventions.py tests/test_variable_flow.py tests/test_fact_names.py,tests)
PROMTOOL_VERSION := $(shell sed -n '/^  bookworm:/,/^  [a-z]/s/^    prometheus: "\(.*\)"$$/\1/p' roles/monitoring/defaults/main.yml)
PROMTOOL := .cache/tools/prometheus-$(PROMTOOL_VERSION)/usr/bin/promtool
AMTOOL_VERSION := $(shell sed -n '/^  bookworm:/,/^  [a-z]/s/^    prometheus-alertmanager: "\(.*\)"$$/\1/p' roles/monitoring/defaults/main.yml)
AMTOOL := .cache/tools/prometheus-alertmanager-$(AMTOOL_VERSION)/usr/bin/amtool
INVENTORY ?= inventories/lab
TEST_DISTROS := debian12 debian13

export LLMHOST_ROOT := $(ROOT)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- control node -----------------------------------------------------------
$(STAMP): requirements.txt constraints.txt training/requirements.txt
	@bash scripts/bootstrap-venv.sh "$(VENV)" "$(STAMP)"

# Kept once per machine, not per clone: a fresh clone links these folders instead of
# downloading or building them again. The wheelhouses (.cache/wheelhouse/<name>: pinned
# wheels for the hosts, each checked against its manifest's sha256 on every use, one
# writer at a time by <name>.lock; about 1 GB); the package models (.cache/models: the
# wheel checked against its sha256 on every run, the converted folder reused only while
# its record matches the pins; 25 CPU-seconds to fetch and convert); promtool and amtool
# (.cache/tools, a folder per version). A checkout whose folder is a real folder keeps it.
MACHINE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llmhost
WHEELHOUSE_CACHE ?= $(MACHINE_CACHE)/wheelhouse
CACHE_wheelhouse = $(WHEELHOUSE_CACHE)
CACHE_models = $(MACHINE_CACHE)/models
CACHE_tools = $(MACHINE_CACHE)/tools
SHARED_CACHE_DIRS := $(ROOT)/.cache/wheelhouse $(ROOT)/.cache/models $(ROOT)/.cache/tools
$(SHARED_CACHE_DIRS):
	@mkdir -p "$(CACHE_$(@F))" "$(ROOT)/.cache" && ln -sfn "$(CACHE_$(@F))" "$@"

.PHONY: venv
venv: $(STAMP) | $(SHARED_CACHE_DIRS) ## Create or update .venv from the pinned requirements

# --- lab host ------------------------------------------------------------------
.PHONY: engine
engine: ## Make sure a Docker engine answers (installs/starts one when root)
	@bash scripts/docker-engine.sh ensure

.PHONY: images
images: engine ## Build the base images for the tests (cached by recipe)
	@for d in $(TEST_DISTROS); do bash scripts/base-image.sh $$d; done

.PHONY: lab-up lab-down lab-status
lab-up: venv engine ## Start the lab host container: key pair, vault, sshd, operator account (llmops)
	@bash scripts/labhost.sh up
lab-down: ## Remove the lab host container
	@bash scripts/labhost.sh down
lab-status: ## Show the lab host
	@bash scripts/labhost.sh status

.PHONY: lab fleet-lab
lab: venv lab-up ## Run the whole loop on the lab host and leave an evidence bundle (ARGS=)
	@$(BIN)/python scripts/llmhost.py lab -i inventories/lab $(ARGS)

fleet-lab: venv engine ## Two replicas behind a gateway: rolling upgrade and rollback under streams (ARGS=)
	@bash scripts/fleet-lab.sh $(ARGS)

.PHONY: fleet-lab-up fleet-lab-down
fleet-lab-up: venv engine ## Start the fleet lab's three containers (one network namespace)
	@bash scripts/fleetlab.sh up
fleet-lab-down: ## Remove the fleet lab's containers
	@bash scripts/fleetlab.sh down

# --- any inventory: one run = one run id = one evidence bundle (scripts/llmhost.py) ---
# The vault password file: LLMHOST_VAULT_PASSWORD_FILE, else .cache/vault/<inventory>.pass.
RUN_ACTIONS := deploy release upgrade eval teardown train rollback
.PHONY: $(RUN_ACTIONS) status
deploy: venv ## Provision, serve, evaluate, seal (INVENTORY=inventories/<x>, ARGS=--check ...)
release: venv ## Switch to another release behind a draining gateway, evaluate (ARGS="-e llmhost_release=<name>")
eval: venv ## Evaluate through the gateway, seal the bundle (INVENTORY=, ARGS=)
teardown: venv ## Drain, stop, shutdown proof, seal the bundle (INVENTORY=, ARGS=)
train: venv ## Train the mini GPT-2, seal the bundle (INVENTORY=, ARGS=)
rollback: venv ## Put the previous vLLM release back in service, seal (INVENTORY=, ARGS=)
upgrade: venv ## Roll a release over the replicas, one at a time behind the gateway (ARGS="-e llmhost_release=<name>")
$(RUN_ACTIONS):
	@$(BIN)/python scripts/llmhost.py $@ -i $(INVENTORY) $(ARGS)

status: venv ## Read-only: units, release, model, tenants, cost, hard stop, last run (ARGS=--json)
	@$(BIN)/python scripts/llmhost.py status -i $(INVENTORY) $(ARGS)

.PHONY: verify-evidence
verify-evidence: ## Check a bundle against its MANIFEST.sha256 (RUN=evidence/<inventory>/<run id>)
	@test -n "$(RUN)" || { echo "usage: make verify-evidence RUN=evidence/<inventory>/<run id>" >&2; exit 2; }
	@python3 scripts/verify_evidence.py "$(RUN)"

.PHONY: tools
tools: | $(ROOT)/.cache/tools ## promtool and amtool for the rule and Alertmanager config tests (Debian's packages, unpacked; no daemon)
	@if [ -x "$(PROMTOOL)" ] && [ -x "$(AMTOOL)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "[llmhost] no apt-get: the promtool and amtool tests will skip"; exit 0; fi; \
	rm -rf .cache/tools/debs && mkdir -p .cache/tools/debs; \
	get() { (cd .cache/tools/debs && apt-get download -q "prometheus=$(PROMTOOL_VERSION)" "prometheus-alertmanager=$(AMTOOL_VERSION)"); }; \
	if ! get; then \
	  if [ "$$(id -u)" != 0 ]; then echo "[llmhost] prometheus / prometheus-alertmanager not downloadable: the promtool and amtool tests will skip"; exit 0; fi; \
	  apt-get -o DPkg::Lock::Timeout=300 update -qq && get; \
	fi; \
	dpkg-deb -x .cache/tools/debs/prometheus_*.deb ".cache/tools/prometheus-$(PROMTOOL_VERSION)"; \
	dpkg-deb -x .cache/tools/debs/prometheus-alertmanager_*.deb ".cache/tools/prometheus-alertmanager-$(AMTOOL_VERSION)"; \
	rm -rf .cache/tools/debs; "$(PROMTOOL)" --version 2>&1 | sed -n 1p; "$(AMTOOL)" --version 2>&1 | sed -n 1p

.PHONY: browser
browser: ## Headless Chromium for the evidence page test (Debian package)
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then \
	  bash -c 'source scripts/lib.sh && apt_install "the evidence page test" chromium'; \
	  else echo "[llmhost] sudo apt-get install chromium (the page test is skipped without it)"; fi; }

# --- tests -----------------------------------------------------------------------
.PHONY: test
# Three lanes side by side (scripts/stages.sh a+b,c+d): the lab tests; lint then the unit
# tests; the Molecule scenarios. The lab tests are the longest chain (a converge over SSH,
# then liveness windows, drains and restarts, one after the other; alone they keep 2 cores
# 56% busy), so they start first. Lint and the unit tests run at a lower CPU priority
# (STAGES_NICE): they time nothing, and take the cores the others leave. Molecule does
# not: its verifiers time streams and cut-offs from the control node, like the lab tests.
# The base image is built in the background while the venv is made (pip leaves a core
# idle for most of that minute): the lanes that need it find it up to date, or wait for
# that build (base-image.sh builds one image at a time); a failed build is tried again,
# and reported, by the lane that needs it.
comma := ,
test: ## Lab tests beside lint then unit tests, beside Molecule; timed per stage (ROLE=x: that role's)
	@mkdir -p .cache; rc=0; \
	bash scripts/base-image.sh $(or $(DISTRO),debian12) > .cache/base-image.log 2>&1 & \
	{ make --no-print-directory venv && \
	  MAKE_ARGS="$(if $(ROLE),ROLE=$(ROLE))" STAGES_NICE="lint unit" \
	  bash scripts/stages.sh $(if $(ROLE),,lab-tests+)lint$(comma)unit+molecule; } || rc=$$?; \
	wait; exit $$rc

.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint --offline --profile production

.PHONY: unit
unit: venv tools browser ## pytest without the lab hosts: unit tests, templates, parsers, refusals
	pytest -q -n $(UNIT_JOBS) --dist loadfile --durations=15 -m "not lab" $(UNIT_TESTS)

.PHONY: lab-tests fleet-test
lab-tests: venv engine ## pytest on a lab host container (SSH, kills under load, partial runs)
	pytest -q -p no:xdist --durations=0 -m "lab and not fleet" tests

# Not in make test: two replicas each installing vLLM and starting it twice, a rollout under
# streams, a replica killed under load: about 11 minutes and 830 CPU-seconds on 2 cores.
fleet-test: venv engine ## The fleet lab as a test: rolling upgrade under streams, a replica killed under load
	pytest -q -p no:xdist --durations=0 -m fleet tests

.PHONY: molecule
# One run per role and distribution: DISTRO=debian13 picks one for all; otherwise a role
# runs on MOLECULE_DISTROS_<role>, else on debian12. scripts/molecule.sh gives each run its
# own pair of loopback ports (the container's 443 and 8000, molecule/base.yml), container
# name and Molecule folder, derived from this checkout: runs (and two worktrees on one
# machine) go side by side, JOBS at a time (2 for all, 1 for ROLE=x), slowest first.
DISTRO ?=
MOLECULE_DISTROS_preflight := debian12 debian13
MOLECULE_RUNS = $(foreach r,$(if $(ROLE),$(ROLE),$(MOLECULE_ORDER)),$(foreach d,$(or $(DISTRO),$(MOLECULE_DISTROS_$(r)),debian12),$(r):$(d)))
molecule: venv engine ## Molecule scenarios (all, or ROLE=x; DISTRO=debian13; JOBS=n at a time)
	@bash scripts/molecule.sh $(MOLECULE_RUNS)

.PHONY: clean
clean: ## Remove the venv and caches (not the evidence)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
