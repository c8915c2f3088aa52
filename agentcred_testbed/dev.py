"""``make dev``: the local stack, the operator and the examples, and what came of them.

Starts (or reuses) the testbed, installs the CRDs, applies ``examples/``, starts the
operator in the background as a recorded testbed process (``make testbed-down``
stops it with everything else) and prints the resources as the operator left them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import yaml

from agentcred_testbed import incluster, jaeger, kube, node, procs, stack
from agentcred_testbed.certs import Pair
from agentcred_testbed.procs import StateDir

NAMES = ("operator",)
REPO = Path(__file__).resolve().parents[1]


def _kube_api(env: dict[str, str]) -> tuple[str, Any]:
    folder = Path(env["KUBE_CA_FILE"]).parent
    pki = {stem: Pair(folder / f"{stem}.crt", folder / f"{stem}.key") for stem in ("ca", "admin")}
    return env["KUBE_API_SERVER"], kube.admin_ssl_context(pki)


PLURALS = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
}


def _path_for(doc: dict[str, Any]) -> str:
    kind, meta = doc["kind"], doc["metadata"]
    group_version = doc["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    plural = PLURALS.get(kind, kind.lower() + "s")
    ns = meta.get("namespace")
    return f"{base}/namespaces/{ns}/{plural}" if ns else f"{base}/{plural}"


def apply_file(server: str, ctx: Any, path: Path, vault_address: str | None = None) -> None:
    """Server-side apply every document (re-running ``make dev`` updates, never duplicates).

    ``vault_address`` replaces a CredentialBackend's ``spec.vault.address`` (the example
    names a conventional port; the testbed's OpenBao listens on a free one)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "CredentialBackend" and vault_address:
            vault = doc.get("spec", {}).get("vault")
            if vault is not None:
                vault["address"] = vault_address
        if doc and doc.get("kind") != "Kustomization":
            target = (
                f"{_path_for(doc)}/{doc['metadata']['name']}?fieldManager=agentcred-dev&force=true"
            )
            kube.api(server, ctx, "PATCH", target, doc, "application/apply-patch+yaml")


def _wait_established(server: str, ctx: Any) -> None:
    for name in CRDS:
        for _ in range(100):
            crd = kube.api(
                server,
                ctx,
                "GET",
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            )
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions", [])
            ):
                break
            time.sleep(0.1)


CRDS = (
    "agentcredentials.agentcred.io",
    "agenttasks.agentcred.io",
    "credentialbackends.agentcred.io",
)
SETTLED = frozenset({"Active", "Succeeded", "Failed", "Expired"})
EXAMPLE_POLICY = 'path "database/creds/readonly" { capabilities = ["read"] }'


def configure_vault_for_example(env: dict[str, str]) -> None:
    """The Vault side a platform team would set up: a role for team-a's research agent."""
    admin = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])
    admin.sys.create_or_update_policy(name="research-agent", policy=EXAMPLE_POLICY)
    admin.write(
        "auth/kubernetes/role/research-agent",
        bound_service_account_names="research-agent",
        bound_service_account_namespaces="team-a",
        audience="vault",
        token_policies="research-agent",
        token_ttl="15m",
        token_max_ttl="2h",
    )


def _wait_for_phase(server: str, ctx: Any, phases: frozenset[str], timeout: float) -> None:
    path = "/apis/agentcred.io/v1alpha1/namespaces/team-a/agenttasks/claim-4711"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kube.api(server, ctx, "GET", path).get("status", {}).get("phase") in phases:
            return
        time.sleep(0.5)


def show(server: str, ctx: Any) -> None:
    backend = kube.api(
        server, ctx, "GET", "/apis/agentcred.io/v1alpha1/credentialbackends/vault-main"
    )
    print("\nCredentialBackend vault-main status (the platform's object):")
    print(json.dumps(backend.get("status", {}), indent=2))
    base = "/apis/agentcred.io/v1alpha1/namespaces/team-a"
    cred = kube.api(server, ctx, "GET", f"{base}/agentcredentials/research-db")
    task = kube.api(server, ctx, "GET", f"{base}/agenttasks/claim-4711")
    print("\nAgentCredential team-a/research-db status:")
    print(json.dumps(cred.get("status", {}), indent=2))
    print("\nAgentTask team-a/claim-4711 status:")
    print(json.dumps(task.get("status", {}), indent=2))
    secrets = kube.api(
        server,
        ctx,
        "GET",
        "/api/v1/namespaces/team-a/secrets?labelSelector=app.kubernetes.io/managed-by%3Dagentcred,agentcred.io/credential",
    )
    print("\nGenerated Secrets (keys only; values are never printed):")
    for item in secrets.get("items", []):
        print(f"  {item['metadata']['name']}: {sorted(item.get('data', {}))}")
    if not secrets.get("items"):
        print("  (none yet)")


def _fresh_example_task(server: str, ctx: Any) -> None:
    """Re-running ``make dev`` starts the example task over (its finalizer revokes first)."""
    path = "/apis/agentcred.io/v1alpha1/namespaces/team-a/agenttasks/claim-4711"
    try:
        kube.api(server, ctx, "DELETE", path)
    except procs.TestbedError:
        return  # not there yet
    for _ in range(120):
        try:
            kube.api(server, ctx, "GET", path)
        except procs.TestbedError:
            return
        time.sleep(0.5)


def main() -> int:
    state = StateDir(stack.default_root())
    env = stack.up(state, log=lambda m: print(f"[testbed] {m}", file=sys.stderr))
    server, ctx = _kube_api(env)
    for crd in CRDS:
        apply_file(server, ctx, REPO / "crds" / f"{crd.split('.')[0]}.yaml")
    _wait_established(server, ctx)
    apply_file(server, ctx, REPO / "manifests" / "base" / "admission.yaml")
    configure_vault_for_example(env)
    procs.stop(state, "operator")
    if node.wanted():
        return _main_in_cluster(state, env, server, ctx)
    operator_env = {
        **env,
        "AGENTCRED_LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "VAULT_TOKEN": "",
    }
    if jaeger.OTLP_ENDPOINT in env:  # its spans into the testbed's Jaeger (docs/operations.md)
        operator_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = env[jaeger.OTLP_ENDPOINT]
    procs.start(
        state, "operator", [str(Path(sys.executable).parent / "agentcred"), "run"], env=operator_env
    )
    _fresh_example_task(server, ctx)
    apply_file(server, ctx, REPO / "examples" / "research-db.yaml", env["VAULT_ADDR"])
    _wait_for_phase(server, ctx, SETTLED, timeout=60)
    show(server, ctx)
    print(f"\nThe operator runs in the background (log: {state.logs / 'operator.log'}).")
    print(
        f"Use the cluster: export KUBECONFIG={env['KUBECONFIG']}   (all variables: "
        f"source {state.root / stack.ENV_FILE})"
    )
    if jaeger.QUERY_URL in env:
        print(f"Its traces: {env[jaeger.QUERY_URL]}/api/traces?service=agentcred-operator")
    print("Stop everything: make testbed-down")
    return 0 if os.path.exists(state.pids / "operator.pid") else 1


def _main_in_cluster(state: StateDir, env: dict[str, str], server: str, ctx: Any) -> int:
    """``make dev NODE=1``: the operator from its image, deployed by the testbed overlay."""
    changed = node.refresh_images(state, env, log=lambda m: print(f"[node] {m}", file=sys.stderr))
    started = time.monotonic()
    incluster.deploy(env, restart=changed)
    print(f"[node] operator deployed in {time.monotonic() - started:.1f}s", file=sys.stderr)
    _fresh_example_task(server, ctx)
    # The operator runs in a pod: it reaches OpenBao through the node's address.
    apply_file(server, ctx, REPO / "examples" / "research-db.yaml", env["NODE_VAULT_ADDR"])
    _wait_for_phase(server, ctx, SETTLED, timeout=90)
    show(server, ctx)
    print("\nThe operator runs in-cluster on the testbed node (two replicas, one leader):")
    print(incluster.kubectl(env, "-n", incluster.NAMESPACE, "get", "pods", "-o", "wide"))
    print(f"Leader: {incluster.leader(env)}")
    print(
        f"Logs: kubectl -n {incluster.NAMESPACE} logs deploy/{incluster.DEPLOYMENT}   "
        f"(or {env['NODE_POD_LOGS']})"
    )
    print(
        f"Use the cluster: export KUBECONFIG={env['KUBECONFIG']}   (all variables: "
        f"source {state.root / stack.ENV_FILE})"
    )
    print("Stop everything (containers included): make testbed-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
