"""The operator deployed in-cluster on the testbed node, from the shipped manifests.

``kubectl apply -k manifests/overlays/testbed`` is the whole install: the base (CRDs,
namespace, ServiceAccount, RBAC, Deployment with two replicas and leader election, PDB,
admission policy, tenant roles) with only the image and a toleration changed. Used by
``make dev NODE=1`` and the node e2e suites.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from agentcred_testbed.procs import TestbedError

REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "manifests" / "overlays" / "testbed"
NAMESPACE = "agentcred-system"
DEPLOYMENT = "agentcred-operator"
LEASE = "agentcred-operator"


def kubectl(
    env: dict[str, str],
    *args: str,
    check: bool = True,
    timeout: float = 180,
    input_text: str | None = None,
) -> str:
    result = subprocess.run(
        [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        input=input_text,
    )
    if check and result.returncode != 0:
        raise TestbedError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()[:800]}")
    return result.stdout


def get_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = kubectl(env, "get", *args, "-o", "json", check=False)
    return dict(json.loads(out)) if out.strip() else {}


def rendered(env: dict[str, str]) -> list[dict[str, Any]]:
    """The overlay's objects, with the operator exporting its spans to the testbed's Jaeger
    when the node reaches one (``NODE_JAEGER_OTLP_ENDPOINT``: an address known only once
    the node is up, so it cannot be in the overlay's files)."""
    docs = [d for d in yaml.safe_load_all(kubectl(env, "kustomize", str(OVERLAY))) if d]
    endpoint = env.get("NODE_JAEGER_OTLP_ENDPOINT")
    for doc in docs:
        if endpoint and doc["kind"] == "Deployment" and doc["metadata"]["name"] == DEPLOYMENT:
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container.setdefault("env", []).append(
                {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint}
            )
    return docs


CRD_ESTABLISHED = "condition=Established"


def deploy(env: dict[str, str], *, restart: bool = False, timeout: float = 240) -> None:
    """Apply the overlay and wait until both replicas are Ready and the leader serves.

    The CRDs go first and are waited for (Established): the operator's start lists
    CredentialQuarantines, and a start that fails on a resource not served yet is retried
    by Kopf only a minute later. "Serves" is the leader's own ``/healthz`` answering as
    Kopf's (after its start-up handlers), not the stand-by's: holding the Lease alone
    comes before Kopf starts."""
    docs = rendered(env)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    # Server-side, as the field manager "kubectl" that the other suites' server-side
    # applies of the same shipped files (admission policy, tenant roles) use too; take
    # over fields an earlier `make dev` applied under its own manager.
    apply = ("apply", "--server-side", "--force-conflicts", "-f", "-")
    kubectl(env, *apply, input_text=yaml.safe_dump_all(crds))
    names = [f"crd/{d['metadata']['name']}" for d in crds]
    kubectl(env, "wait", f"--for={CRD_ESTABLISHED}", "--timeout=60s", *names, timeout=70)
    kubectl(env, *apply, input_text=yaml.safe_dump_all([d for d in docs if d not in crds]))
    if restart:  # the image behind the same tag changed (make dev after a code change)
        kubectl(env, "-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
    kubectl(
        env,
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        f"deployment/{DEPLOYMENT}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 10,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if leader_serving(env):
            return
        time.sleep(0.5)
    raise TestbedError(
        f"no operator replica leads and serves within 90 s (Lease holder: {leader(env)}; "
        f"kubectl -n {NAMESPACE} logs deploy/{DEPLOYMENT})"
    )


def leader(env: dict[str, str]) -> str | None:
    """The holder identity of the leader Lease (``<pod name>_<random>``), if any."""
    lease = get_json(env, "lease", "-n", NAMESPACE, LEASE)
    holder = (lease.get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


POD_LABELS = "app.kubernetes.io/name=agentcred,app.kubernetes.io/component=operator"
HEALTH_PORT = 8080  # AGENTCRED_LIVENESS_ENDPOINT in manifests/base/deployment.yaml


def leader_pod_ip(env: dict[str, str]) -> str | None:
    """The pod IP of the replica holding the Lease, if it is a running pod of now."""
    holder = leader(env) or ""
    for pod in get_json(env, "pods", "-n", NAMESPACE, "-l", POD_LABELS).get("items", []):
        meta, status = pod["metadata"], pod.get("status") or {}
        if holder.startswith(meta["name"] + "_") and not meta.get("deletionTimestamp"):
            return str(status["podIP"]) if status.get("podIP") else None
    return None


def serves_as_leader(health: bytes) -> bool:
    """A ``/healthz`` answer from Kopf (its probe results, a JSON object), not the
    stand-by's ``{"leader": false}`` (agentcred/leadership.py: StandbyHealth)."""
    try:
        body = json.loads(health)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("leader") is not False


def leader_serving(env: dict[str, str]) -> bool:
    """The Lease holder is a pod of now whose Kopf has started (its health endpoint
    answers; the host reaches pod IPs on the node's bridge)."""
    ip = leader_pod_ip(env)
    if ip is None:
        return False
    try:
        with urllib.request.urlopen(f"http://{ip}:{HEALTH_PORT}/healthz", timeout=3) as answer:
            return bool(answer.status == 200 and serves_as_leader(answer.read()))
    except (OSError, urllib.error.URLError):
        return False


def remove(env: dict[str, str], *, node_running: bool = True, timeout: float = 120) -> None:
    """Delete the operator Deployment and wait for its pods to go (suites that run their own
    operators must not race an in-cluster one).

    Without a running node (``make dev NODE=1`` then ``make testbed-down`` stopped it; the
    cluster's objects stay in etcd) no kubelet will ever confirm the pods' deletion, and
    their containers are gone anyway: their objects are deleted at once."""
    kubectl(env, "-n", NAMESPACE, "delete", "deployment", DEPLOYMENT, "--ignore-not-found")
    if not node_running:
        kubectl(
            env,
            "-n",
            NAMESPACE,
            "delete",
            "pod",
            "-l",
            POD_LABELS,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
            check=False,
        )
    kubectl(
        env,
        "-n",
        NAMESPACE,
        "wait",
        "--for=delete",
        "pod",
        "-l",
        POD_LABELS,
        f"--timeout={int(timeout)}s",
        check=False,
        timeout=timeout + 10,
    )
    # No replica is left to hold or release it: the next deploy waits for a new holder.
    kubectl(env, "-n", NAMESPACE, "delete", "lease", LEASE, "--ignore-not-found", check=False)
