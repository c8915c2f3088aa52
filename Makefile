# The commands people type. `make dev` and `make test` install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: bench setup dev test test-azure unit e2e lint fmt testbed-up testbed-down testbed-status kube-binaries tools argocd-cm clean

$(STAMP): pyproject.toml client/pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	@touch $(STAMP)

setup: $(STAMP)

## Run the operator against the local stack with the examples applied, and show the result.
## `make dev NODE=1`: the same on a real node (kubelet + containerd), the operator running
## in-cluster from its image (manifests/overlays/testbed), two replicas with one leader;
## `make dev NODE=1 EXAMPLE=chat-sessions` also starts examples/chat-sessions/ there.
dev: setup
	NODE=$(NODE) EXAMPLE=$(EXAMPLE) $(PY) -m agentcred_testbed.dev

## Lint, type-check, then the whole test suite (starts and stops the testbed itself), under
## coverage with the operators the tests start; ends with one line: services/ and total.
test: setup lint
	rm -rf .coverage-data
	$(PY) -m coverage run -m pytest; status=$$?; $(PY) scripts/coverage-summary.py; exit $$status

unit: setup
	$(PY) -m pytest tests/unit client/tests

e2e: setup
	$(PY) -m pytest tests/e2e

## Azure Key Vault against Lowkey Vault; needs LOWKEY_VAULT_JAR (see agentcred_testbed/lowkey.py).
test-azure: setup
	AGENTCRED_TESTBED_AZURE=1 $(PY) -m pytest tests/azure

lint: setup
	$(VENV)/bin/ruff check operator agentcred_testbed tests bench client examples
	$(VENV)/bin/ruff format --check operator agentcred_testbed tests bench client examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench
	$(VENV)/bin/lint-imports

fmt: setup
	$(VENV)/bin/ruff format operator agentcred_testbed tests bench client examples
	$(VENV)/bin/ruff check --fix operator agentcred_testbed tests bench client examples

## Start etcd, kube-apiserver, kube-controller-manager, OpenBao, PostgreSQL and the
## cloud emulators in the background; writes .testbed/env.
testbed-up: setup
	$(PY) -m agentcred_testbed up

testbed-down:
	@if [[ -x $(PY) ]]; then $(PY) -m agentcred_testbed down; fi

testbed-status: setup
	$(PY) -m agentcred_testbed status

kube-binaries:
	bash scripts/build-kube.sh

## helm, promtool and argocd-lua (Argo CD's Lua runtime) into ~/.cache/agentcred/tools/;
## `make test` builds them on first use too.
tools:
	bash scripts/build-tools.sh

## Regenerate manifests/argocd/argocd-cm.yaml after editing argocd/resource_customizations/.
argocd-cm: setup
	$(PY) scripts/generate-argocd-cm.py

clean: testbed-down
	rm -rf .testbed .mypy_cache .ruff_cache .pytest_cache build

## The benchmark (issue #10): testbed + operator + scenarios; results in bench/results/.
## make bench ARGS="--sizes 100,1000 --scenarios floor,burst,restart,completion,paced,shared"
bench: setup
	nice -n 5 $(PY) -m bench.run $(ARGS)
