#!/usr/bin/env bash
# Install what the project needs on a fresh machine: system packages (PostgreSQL for
# the testbed), the virtualenv at .venv with the package, every backend extra and
# the dev/test tools. Safe to run again; `make` calls it when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null || need_apt+=(golang-go)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v curl >/dev/null || need_apt+=(curl)
# The testbed node (agentcred_testbed/node.py; make dev NODE=1, tests/e2e/node):
command -v containerd >/dev/null || need_apt+=(containerd)   # the CRI runtime (1.6: kubelet 1.36 still takes it)
command -v runc >/dev/null || need_apt+=(runc)               # the OCI runtime containerd's shim calls
[[ -x /usr/lib/cni/bridge ]] || need_apt+=(containernetworking-plugins)  # bridge, host-local, loopback
command -v nft >/dev/null || need_apt+=(nftables)            # the node's DNAT to the 127.0.0.1 servers
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)   # Debian base images without a registry
command -v buildah >/dev/null || need_apt+=(buildah)         # builds the Dockerfile without a Docker engine
{ command -v gcc >/dev/null && dpkg -s libc6-dev >/dev/null 2>&1; } || need_apt+=(gcc libc6-dev)  # static pause
command -v unshare >/dev/null || need_apt+=(util-linux)      # private mount namespaces for node and builds
if ((${#need_apt[@]})); then
  echo "bootstrap: apt-get install ${need_apt[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # The Debian package starts a cluster of its own; the testbed runs its own instance.
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
  # Likewise containerd: the node runs its own, with every path in the testbed folder.
  $SUDO systemctl disable --now containerd >/dev/null 2>&1 || true
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all,dev]'
# The client library (client/, import agentcred_client): its tests run in `make test`.
.venv/bin/python -m pip install -q -e ./client
echo "bootstrap: done" >&2
