"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager.

No kubelet and no Docker: this is what envtest runs, plus the controller manager's
garbage-collector, namespace, service-account and resource-quota controllers so that
ownerReference garbage collection, namespace deletion, default ServiceAccounts and
object-count quotas behave as in a real cluster. Binaries come from
``KUBEBUILDER_ASSETS``, then ``PATH``, then the build cache filled by
``scripts/build-kube.sh`` (built from source through the Go module proxy on first use).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from agentcred_testbed import certs, procs
from agentcred_testbed.procs import StateDir, TestbedError

NAMES = ("kube-controller-manager", "kube-apiserver", "etcd")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
_REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = _REPO / "scripts" / "build-kube.sh"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# resourcequota-controller: the API server's quota admission refuses every create in a
# namespace whose ResourceQuota has no status yet, and only this controller fills it in
# (object count quota for AgentTasks, tests/e2e/hardening/test_fair_share.py).
CONTROLLERS = (
    "garbage-collector-controller,namespace-controller,serviceaccount-controller,"
    "resourcequota-controller"
)


def _complete(folder: Path) -> bool:
    return all(os.access(folder / b, os.X_OK) for b in BINARIES)


def find_binaries() -> Path:
    """The folder holding etcd, kube-apiserver and kube-controller-manager."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _complete(Path(assets)):
        return Path(assets)
    found = [shutil.which(b) for b in BINARIES]
    if all(found) and len({Path(str(f)).parent for f in found}) == 1:
        return Path(str(found[0])).parent
    return build_binaries()


def find_kubectl(bins: Path) -> Path:
    """kubectl beside the control-plane binaries (envtest ships one), on PATH, or built."""
    if os.access(bins / "kubectl", os.X_OK):
        return bins / "kubectl"
    found = shutil.which("kubectl")
    return Path(found) if found else build_binaries() / "kubectl"


def build_binaries() -> Path:
    """Build (or reuse from cache) the pinned versions; returns their folder."""
    env = dict(os.environ, AGENTCRED_CACHE=str(procs.cache_dir()))
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not _complete(Path(lines[-1])):
        raise TestbedError(f"{BUILD_SCRIPT} failed (exit {result.returncode})")
    return Path(lines[-1])


def _pki(state: StateDir) -> dict[str, certs.Pair]:
    folder = state.data("pki")
    ca = certs.make_ca(folder)
    return {
        "ca": ca,
        "serving": certs.make_leaf(
            folder,
            "apiserver",
            ca,
            common_name="kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", "10.0.0.1"),
        ),
        "admin": certs.make_leaf(folder, "admin", ca, common_name="admin", org="system:masters"),
        # How the apiserver authenticates to a kubelet (logs, exec) when the node runs.
        "kubelet-client": certs.make_leaf(
            folder,
            "apiserver-kubelet-client",
            ca,
            common_name="kube-apiserver-kubelet-client",
            org="system:masters",
        ),
        "sa": certs.make_signing_keypair(folder),
    }


def _start_etcd(state: StateDir, bins: Path) -> int:
    # A fresh cluster each start: OpenBao (in memory) and PostgreSQL (initdb) start empty,
    # and objects kept from an earlier testbed (tasks whose leases died with that OpenBao,
    # namespaces stuck Terminating, a `make dev NODE=1` Deployment bound to a stopped node)
    # would only load the API server and mislead the tests.
    shutil.rmtree(state.data("etcd"), ignore_errors=True)
    client, peer = procs.free_port(), procs.free_port()
    procs.start(
        state,
        "etcd",
        [
            str(bins / "etcd"),
            "--name=default",
            f"--data-dir={state.data('etcd')}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
    )
    procs.wait_until(state, "etcd", lambda: procs.http_ok(f"http://127.0.0.1:{client}/health"))
    return client


def _start_apiserver(state: StateDir, bins: Path, pki: dict[str, certs.Pair], etcd: int) -> int:
    port = procs.free_port()
    procs.start(
        state,
        "kube-apiserver",
        [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={state.data('apiserver-certs')}",
            f"--tls-cert-file={pki['serving'].cert}",
            f"--tls-private-key-file={pki['serving'].key}",
            f"--client-ca-file={pki['ca'].cert}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki['sa'].cert}",
            f"--service-account-signing-key-file={pki['sa'].key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            # For the testbed node (node.py): reach its kubelet by IP (its host name
            # resolves nowhere) with a client certificate the kubelet trusts.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki['kubelet-client'].cert}",
            f"--kubelet-client-key={pki['kubelet-client'].key}",
        ],
    )
    ctx = admin_ssl_context(pki)
    procs.wait_until(
        state,
        "kube-apiserver",
        lambda: procs.http_ok(f"https://127.0.0.1:{port}/readyz", context=ctx),
        timeout=120,
        what="ready (/readyz)",
    )
    return port


def admin_ssl_context(pki: dict[str, certs.Pair]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].cert))
    ctx.load_cert_chain(str(pki["admin"].cert), str(pki["admin"].key))
    return ctx


def write_kubeconfig(path: Path, port: int, pki: dict[str, certs.Pair]) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "agentcred-testbed",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": b64(pki["ca"].cert),
                },
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(pki["admin"].cert),
                    "client-key-data": b64(pki["admin"].key),
                },
            }
        ],
        "contexts": [
            {
                "name": "agentcred-testbed",
                "context": {"cluster": "agentcred-testbed", "user": "admin"},
            }
        ],
        "current-context": "agentcred-testbed",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _start_controller_manager(
    state: StateDir, bins: Path, pki: dict[str, certs.Pair], kubeconfig: Path
) -> None:
    procs.start(
        state,
        "kube-controller-manager",
        [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--controllers={CONTROLLERS}",
            "--bind-address=127.0.0.1",
            f"--secure-port={procs.free_port()}",
            f"--cert-dir={state.data('kcm-certs')}",
            "--leader-elect=false",
            f"--root-ca-file={pki['ca'].cert}",
            f"--service-account-private-key-file={pki['sa'].key}",
            "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5",
        ],
    )
    ctx = admin_ssl_context(pki)
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]

    def default_sa_exists() -> bool:
        url = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx):  # noqa: S310
                return True
        except OSError:
            return False

    procs.wait_until(
        state,
        "kube-controller-manager",
        default_sa_exists,
        timeout=90,
        what="running (default ServiceAccount created)",
    )


def api(
    server: str,
    ctx: ssl.SSLContext,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One admin call to the apiserver (the testbed needs only a handful)."""
    request = urllib.request.Request(  # noqa: S310 - https to our own apiserver
        f"{server}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=ctx) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result
    except urllib.error.HTTPError as exc:
        if exc.code == 409:  # already exists: the testbed is idempotent
            return {}
        raise TestbedError(f"{method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None


OPERATOR_NAMESPACE = "agentcred-system"


def make_token_reviewer(server: str, ctx: ssl.SSLContext, folder: Path) -> Path:
    """A ServiceAccount allowed to call TokenReview, with a long token for OpenBao.

    OpenBao's kubernetes auth method validates agents' tokens through the
    TokenReview API; it needs an identity of its own to do that (as in a real
    cluster, where Vault runs with system:auth-delegator).
    """
    ns, name = "kube-system", "openbao-token-reviewer"
    api(
        server,
        ctx,
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"metadata": {"name": name}},
    )
    api(
        server,
        ctx,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    )
    token = api(
        server,
        ctx,
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 30 * 24 * 3600},
        },
    )["status"]["token"]
    path = folder / "token-reviewer.jwt"
    path.write_text(token)
    path.chmod(0o600)
    return path


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    bins = find_binaries()
    pki = _pki(state)
    etcd = _start_etcd(state, bins)
    port = _start_apiserver(state, bins, pki, etcd)
    server = f"https://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(state.root / "kubeconfig", port, pki)
    _start_controller_manager(state, bins, pki, kubeconfig)
    reviewer = make_token_reviewer(server, admin_ssl_context(pki), state.data("pki"))
    # The operator's own namespace: lease records and operator-side Secrets live here.
    api(
        server,
        admin_ssl_context(pki),
        "POST",
        "/api/v1/namespaces",
        {"metadata": {"name": OPERATOR_NAMESPACE}},
    )
    return {
        "AGENTCRED_NAMESPACE": OPERATOR_NAMESPACE,
        "KUBECONFIG": str(kubeconfig),
        "KUBE_API_SERVER": server,
        "KUBE_CA_FILE": str(pki["ca"].cert),
        "KUBE_TOKEN_REVIEWER_JWT_FILE": str(reviewer),
        "KUBEBUILDER_ASSETS": str(bins),
        "KUBECTL": str(find_kubectl(bins)),
    }


def down(state: StateDir) -> None:
    for name in NAMES:
        procs.stop(state, name)
