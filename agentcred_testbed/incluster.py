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
from pathlib import Path
from typing import Any

from agentcred_testbed.procs import TestbedError

REPO = Path(__file__).resolve().parents[1]
OVERLAY = REPO / "manifests" / "overlays" / "testbed"
NAMESPACE = "agentcred-system"
DEPLOYMENT = "agentcred-operator"
LEASE = "agentcred-operator"


def kubectl(env: dict[str, str], *args: str, check: bool = True, timeout: float = 180) -> str:
    result = subprocess.run(
        [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise TestbedError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()[:800]}")
    return result.stdout


def get_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = kubectl(env, "get", *args, "-o", "json", check=False)
    return dict(json.loads(out)) if out.strip() else {}


def deploy(env: dict[str, str], *, restart: bool = False, timeout: float = 240) -> None:
    """Apply the overlay and wait until both replicas are Ready and one holds the Lease."""
    # Server-side, as the field manager "kubectl" that the other suites' server-side
    # applies of the same shipped files (admission policy, tenant roles) use too; take
    # over fields an earlier `make dev` applied under its own manager.
    kubectl(env, "apply", "--server-side", "--force-conflicts", "-k", str(OVERLAY))
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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if leader(env):
            return
        time.sleep(0.5)
    raise TestbedError("no operator replica took the leader Lease within 60 s")


def leader(env: dict[str, str]) -> str | None:
    """The holder identity of the leader Lease (``<pod name>_<random>``), if any."""
    lease = get_json(env, "lease", "-n", NAMESPACE, LEASE)
    holder = (lease.get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


POD_LABELS = "app.kubernetes.io/name=agentcred,app.kubernetes.io/component=operator"


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
