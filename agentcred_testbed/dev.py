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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import hvac
import yaml

from agentcred_testbed import chat_example, incluster, jaeger, kube, node, procs, stack
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


def apply_docs(server: str, ctx: Any, docs: Iterable[dict[str, Any] | None]) -> None:
    """Server-side apply every document (re-running ``make dev`` updates, never duplicates)."""
    for doc in docs:
        if doc and doc.get("kind") != "Kustomization":
            target = (
                f"{_path_for(doc)}/{doc['metadata']['name']}?fieldManager=agentcred-dev&force=true"
            )
            kube.api(server, ctx, "PATCH", target, doc, "application/apply-patch+yaml")


def apply_file(
    server: str,
    ctx: Any,
    path: Path,
    vault_address: str | None = None,
    database: str | None = None,
) -> None:
    """Server-side apply every document of ``path``.

    ``vault_address`` replaces a CredentialBackend's ``spec.vault.address`` and
    ``database`` (``host:port/db``) the database an AgentCredential's template names
    (the example names conventional ports; the testbed's servers listen on free ones)."""
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        if doc and doc.get("kind") == "CredentialBackend" and vault_address:
            vault = doc.get("spec", {}).get("vault")
            if vault is not None:
                vault["address"] = vault_address
        if doc and database:
            chat_example.point_database(doc, database)
    apply_docs(server, ctx, docs)


def crd_files() -> list[Path]:
    """Every CRD the operator serves (crds/kustomization.yaml): its start lists some of
    them (CredentialQuarantines), so all must be served before it runs."""
    listed = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())["resources"]
    return [REPO / "crds" / name for name in listed]


def crd_names() -> list[str]:
    return [yaml.safe_load(path.read_text())["metadata"]["name"] for path in crd_files()]


def _wait_established(server: str, ctx: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for name in crd_names():
        while True:
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
            if time.monotonic() > deadline:
                raise procs.TestbedError(f"CRD {name} not Established within {timeout:.0f} s")
            time.sleep(0.1)


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


def _wait_for_phase(server: str, ctx: Any, phases: frozenset[str], timeout: float) -> bool:
    """Until the example task settles; says so when it does not (never a silent timeout)."""
    path = "/apis/agentcred.io/v1alpha1/namespaces/team-a/agenttasks/claim-4711"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kube.api(server, ctx, "GET", path).get("status", {}).get("phase") in phases:
            return True
        time.sleep(0.5)
    print(
        f"\nThe example task claim-4711 did not settle within {timeout:.0f} s; its status "
        "and the operator's log below say why (docs/troubleshooting.md).",
        file=sys.stderr,
    )
    return False


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
    for crd in crd_files():
        apply_file(server, ctx, crd)
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
    apply_file(
        server,
        ctx,
        REPO / "examples" / "research-db.yaml",
        env["VAULT_ADDR"],
        database=f"127.0.0.1:{env['PGPORT']}/{env['PGDATABASE']}",
    )
    if example_wanted():
        print(f"[dev] EXAMPLE={example_wanted()} runs on the node only: make dev NODE=1 ...")
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
    say = _say("node")
    changed = node.refresh_images(state, env, log=say)
    # The suites taint the node so that their node-less pods stay Pending; a newcomer's
    # own pods (no tolerations) must run here (README, "Consume the Secret from a pod").
    if node.set_taint(env, on=False):
        say(f"node {node.NODE_NAME}: taint {node.TAINT_KEY} removed (ordinary pods run here)")
    started = time.monotonic()
    incluster.deploy(env, restart=changed)  # returns once the leader serves (incluster.py)
    say(f"operator deployed in {time.monotonic() - started:.1f}s")
    _fresh_example_task(server, ctx)
    # The operator and the pods run on the node: they reach OpenBao and PostgreSQL through
    # the node's address.
    database = f"{env['NODE_HOST_IP']}:{env['PGPORT']}/{env['PGDATABASE']}"
    apply_file(
        server,
        ctx,
        REPO / "examples" / "research-db.yaml",
        env["NODE_VAULT_ADDR"],
        database=database,
    )
    if example_wanted() == chat_example.NAME:
        start_chat_sessions(state, env, server, ctx)
    elif example_wanted():
        print(f"[dev] unknown EXAMPLE={example_wanted()} (known: {chat_example.NAME})")
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
    if example_wanted() == chat_example.NAME:
        show_chat_sessions(env)
    print("Stop everything (containers included): make testbed-down")
    return 0


def example_wanted() -> str:
    """``EXAMPLE=chat-sessions`` (``make dev NODE=1 EXAMPLE=chat-sessions``), or empty."""
    return os.environ.get("EXAMPLE", "").strip()


def _say(prefix: str) -> Callable[[str], None]:
    return lambda message: print(f"[{prefix}] {message}", file=sys.stderr)


def configure_vault_for_chat_sessions(env: dict[str, str]) -> None:
    """The platform's Vault role for the chat service's identity (as for research-agent)."""
    admin = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])
    admin.write(
        f"auth/kubernetes/role/{chat_example.VAULT_ROLE}",
        bound_service_account_names=chat_example.SERVICE_ACCOUNT,
        bound_service_account_namespaces=chat_example.NAMESPACE,
        audience="vault",
        token_policies="research-agent",
        token_ttl="15m",
        token_max_ttl="2h",
    )


def start_chat_sessions(state: StateDir, env: dict[str, str], server: str, ctx: Any) -> None:
    """examples/chat-sessions/ on the node: its image, its table, its Vault role, its
    objects; waits until its pod is Ready."""
    say = _say("chat-sessions")
    changed = node.add_image(state, env, chat_example.NAME, log=say)
    chat_example.seed(env)
    configure_vault_for_chat_sessions(env)
    database = f"{env['NODE_HOST_IP']}:{env['PGPORT']}/{env['PGDATABASE']}"
    docs = chat_example.documents(
        database=database, otlp_endpoint=env.get("NODE_JAEGER_OTLP_ENDPOINT")
    )
    apply_docs(server, ctx, docs)
    where = ("-n", chat_example.NAMESPACE)
    if changed:  # a new build behind the same tag
        incluster.kubectl(env, *where, "rollout", "restart", f"deployment/{chat_example.NAME}")
    incluster.kubectl(
        env,
        *where,
        "rollout",
        "status",
        f"deployment/{chat_example.NAME}",
        "--timeout=180s",
        timeout=190,
    )
    say("the service is Ready")


def show_chat_sessions(env: dict[str, str]) -> None:
    pods = incluster.get_json(
        env, "pods", "-n", chat_example.NAMESPACE, "-l", chat_example.POD_LABELS
    )
    ips = [p["status"].get("podIP") for p in pods.get("items", []) if p.get("status")]
    url = f"http://{ips[0]}:{chat_example.PORT}" if ips and ips[0] else "http://<pod IP>:8080"
    print("\nThe chat-sessions example serves on the node (examples/chat-sessions/README.md):")
    print(f"  CHAT={url}")
    print(
        "  SID=$(curl -s -XPOST $CHAT/sessions | python3 -c "
        "'import json,sys; print(json.load(sys.stdin)[\"session\"])')"
    )
    print('  curl -s $CHAT/sessions/$SID/questions -d \'{"question": "how many claims in May?"}\'')
    print("  curl -s -XDELETE $CHAT/sessions/$SID")


if __name__ == "__main__":
    sys.exit(main())
