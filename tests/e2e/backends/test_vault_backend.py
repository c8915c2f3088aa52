"""The Vault backend against the testbed's real OpenBao, PostgreSQL and kube-apiserver.

Each test gets a fresh Kubernetes namespace with a ServiceAccount ``agent``, and an
OpenBao policy and Kubernetes-auth role of the same name bound to it. The agent's
identity does real TokenRequests and reads real Secrets, as the operator's does.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hvac
import psycopg
import pytest
import requests
from hvac.exceptions import VaultError
from kubernetes import client
from requests.adapters import HTTPAdapter

from agentcred.backends.base import (
    BackendDenied,
    BackendError,
    BackendInvalidConfig,
    BackendNotFound,
    BackendUnavailable,
    Identity,
    Issued,
    IssueRequest,
    Lease,
    SessionBackend,
)
from agentcred.backends.vault import VaultBackend
from agentcred.models.resolved import ResolvedCredential, parse_resolved
from support import postgres
from support.kube import wait_for
from support.leaks import exception_texts

pytestmark = pytest.mark.e2e

SA = "agent"
DB_CREDS = "database/creds/readonly"
TTL = datetime.timedelta(minutes=2)


@dataclass
class Agent:
    """One test's world: its namespace, its Vault role/policy name and API clients."""

    namespace: str
    env: dict[str, str]
    kube: client.ApiClient
    root: Any  # hvac client with the root token

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.kube)

    def identity(self, service_account: str = SA) -> Identity:
        core, namespace = self.core, self.namespace

        async def token_for(audience: str) -> str:
            body = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
            review = await asyncio.to_thread(
                core.create_namespaced_service_account_token, service_account, namespace, body
            )
            token: str = review.status.token
            return token

        async def secret_value(name: str, key: str) -> str:
            secret = await asyncio.to_thread(core.read_namespaced_secret, name, namespace)
            return base64.b64decode(secret.data[key]).decode()

        return Identity(
            namespace=namespace,
            service_account=service_account,
            task="claim-4711",
            task_uid=str(uuid.uuid4()),
            token_for=token_for,
            secret_value=secret_value,
        )

    def spec(self, auth: dict[str, Any] | None = None, **source: Any) -> ResolvedCredential:
        auth = auth or {"kubernetes": {"role": self.namespace, "audience": "vault"}}
        source = source or {"dynamic": {"path": DB_CREDS}}
        vault = {"address": self.env["VAULT_ADDR"], "auth": auth, **source}
        return parse_resolved({"vault": vault, "allowInsecureHTTP": True})

    def request(
        self, spec: ResolvedCredential, ttl: datetime.timedelta = TTL, sa: str = SA
    ) -> IssueRequest:
        return IssueRequest(
            credential="research-db",
            spec=spec,
            identity=self.identity(sa),
            ttl=ttl,
            correlation_id=f"test-{uuid.uuid4().hex[:8]}",
        )

    def put_secret(self, name: str, key: str, value: str) -> None:
        body = {"metadata": {"name": name}, "stringData": {key: value}}
        self.core.create_namespaced_secret(self.namespace, body)

    def kv_path(self, name: str) -> str:
        return f"{self.namespace}/{name}"


@pytest.fixture
def agent(kube: client.ApiClient, namespace: str, testbed_env: dict[str, str]) -> Iterator[Agent]:
    root = hvac.Client(url=testbed_env["VAULT_ADDR"], token=testbed_env["VAULT_TOKEN"])
    policy = (
        f'path "{DB_CREDS}" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
    )
    root.sys.create_or_update_policy(name=namespace, policy=policy)
    root.write(
        f"auth/kubernetes/role/{namespace}",
        bound_service_account_names=SA,
        bound_service_account_namespaces=namespace,
        audience="vault",
        token_policies=namespace,
    )
    client.CoreV1Api(kube).create_namespaced_service_account(namespace, {"metadata": {"name": SA}})
    yield Agent(namespace=namespace, env=testbed_env, kube=kube, root=root)
    root.delete(f"auth/kubernetes/role/{namespace}")
    root.delete(f"auth/approle/role/{namespace}")
    root.sys.delete_policy(name=namespace)
    root.adapter.close()


@pytest.fixture
def backend() -> Iterator[VaultBackend]:
    vault = VaultBackend(concurrency=4, timeout=10)
    yield vault
    asyncio.run(vault.aclose())


def connect(env: dict[str, str], user: str, password: str) -> psycopg.Connection[Any]:
    return postgres.connect(env, user, password, autocommit=True)


def role_exists(env: dict[str, str], name: str) -> bool:
    with connect(env, env["PGUSER"], env["PGPASSWORD"]) as admin:
        row = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    return row is not None


def logs_in(env: dict[str, str], user: str, password: str) -> bool:
    try:
        with connect(env, user, password) as conn:
            return conn.execute("SELECT current_user").fetchone() == (user,)
    except psycopg.OperationalError:
        return False


def token_alive(root: Any, accessor: str) -> bool:
    try:
        root.auth.token.lookup_accessor(accessor)
    except VaultError:
        return False
    return True


def seconds_left(when: datetime.datetime | None) -> float:
    assert when is not None
    return (when - datetime.datetime.now(datetime.UTC)).total_seconds()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def revoke(backend: VaultBackend, spec: ResolvedCredential, issued: Issued) -> None:
    asyncio.run(backend.revoke(Lease(spec, issued.lease_id, issued.session, "test-revoke")))


# -- kubernetes auth, dynamic PostgreSQL credentials --------------------------------------


def test_kubernetes_auth_issues_a_database_credential_that_logs_in(
    agent: Agent, backend: VaultBackend
) -> None:
    spec = agent.spec()
    issued = asyncio.run(backend.issue(agent.request(spec)))
    try:
        assert isinstance(backend, SessionBackend)
        assert set(issued.data) >= {"username", "password"}
        assert logs_in(agent.env, issued.data["username"], issued.data["password"])
        assert issued.lease_id.startswith(f"{DB_CREDS}/")
        assert issued.renewable
        # The role's default_ttl is 1h: the lease and its token were cut to the task's 2m.
        assert 100 < seconds_left(issued.expires_at) <= 120
        assert issued.session is not None
        token = agent.root.auth.token.lookup_accessor(issued.session.ref)["data"]
        assert 100 < token["ttl"] <= 120
        assert token["meta"]["service_account_name"] == SA
        lease = agent.root.sys.read_lease(lease_id=issued.lease_id)["data"]
        assert 100 < lease["ttl"] <= 120
    finally:
        revoke(backend, spec, issued)


def test_revoke_ends_the_login_and_drops_the_role_and_is_idempotent(
    agent: Agent, backend: VaultBackend
) -> None:
    spec = agent.spec()
    issued = asyncio.run(backend.issue(agent.request(spec)))
    user, password = issued.data["username"], issued.data["password"]
    assert issued.session is not None
    assert logs_in(agent.env, user, password)

    revoke(backend, spec, issued)

    assert not token_alive(agent.root, issued.session.ref)
    # Vault revokes a token's leases right after the token, in the background.
    wait_for(lambda: not role_exists(agent.env, user), timeout=15, what="role dropped")
    assert not logs_in(agent.env, user, password)
    revoke(backend, spec, issued)  # already gone: success


def test_renew_extends_the_lease_and_its_token(agent: Agent, backend: VaultBackend) -> None:
    spec = agent.spec()
    issued = asyncio.run(backend.issue(agent.request(spec, ttl=datetime.timedelta(minutes=1))))
    try:
        assert 50 < seconds_left(issued.expires_at) <= 60
        renewed = asyncio.run(
            backend.renew(
                Lease(spec, issued.lease_id, issued.session, "r"), datetime.timedelta(minutes=5)
            )
        )
        assert not renewed.capped
        assert issued.expires_at is not None and renewed.expires_at > issued.expires_at
        assert 290 < seconds_left(renewed.expires_at) <= 300
        assert issued.session is not None
        token = agent.root.auth.token.lookup_accessor(issued.session.ref)["data"]
        assert 290 < token["ttl"] <= 300
        assert logs_in(agent.env, issued.data["username"], issued.data["password"])
    finally:
        revoke(backend, spec, issued)


def test_renew_beyond_the_token_max_ttl_reports_capped(agent: Agent, backend: VaultBackend) -> None:
    agent.root.write(
        f"auth/kubernetes/role/{agent.namespace}",
        bound_service_account_names=SA,
        bound_service_account_namespaces=agent.namespace,
        audience="vault",
        token_policies=agent.namespace,
        token_max_ttl="30s",
    )
    spec = agent.spec()
    issued = asyncio.run(backend.issue(agent.request(spec)))
    try:
        # The lease itself got 2m, but it ends with its token, which may live 30s at most.
        assert seconds_left(issued.expires_at) <= 30
        renewed = asyncio.run(backend.renew(Lease(spec, issued.lease_id, issued.session, "r"), TTL))
        assert renewed.capped
        assert seconds_left(renewed.expires_at) <= 30
    finally:
        revoke(backend, spec, issued)


# -- the other auth methods ----------------------------------------------------------------


def test_approle_auth_issues(agent: Agent, backend: VaultBackend) -> None:
    role = f"auth/approle/role/{agent.namespace}"
    agent.root.write(role, token_policies=agent.namespace)
    role_id = agent.root.read(f"{role}/role-id")["data"]["role_id"]
    secret_id = agent.root.write(f"{role}/secret-id")["data"]["secret_id"]
    agent.put_secret("approle", "secret-id", secret_id)
    auth = {"appRole": {"roleId": role_id, "secretIdRef": {"name": "approle", "key": "secret-id"}}}
    spec = agent.spec(auth)

    issued = asyncio.run(backend.issue(agent.request(spec)))

    try:
        assert logs_in(agent.env, issued.data["username"], issued.data["password"])
        assert 100 < seconds_left(issued.expires_at) <= 120
    finally:
        revoke(backend, spec, issued)


def test_token_secret_ref_issues_under_a_child_token(agent: Agent, backend: VaultBackend) -> None:
    creator = f"{agent.namespace}-creator"
    agent.root.sys.create_or_update_policy(
        name=creator,
        policy=f'path "{DB_CREDS}" {{ capabilities = ["read"] }}\n'
        'path "auth/token/create" { capabilities = ["update"] }\n',
    )
    parent = agent.root.auth.token.create(policies=[creator], ttl="10m")["auth"]
    agent.put_secret("vault-token", "token", parent["client_token"])
    spec = agent.spec({"tokenSecretRef": {"name": "vault-token", "key": "token"}})
    request = agent.request(spec)
    try:
        issued = asyncio.run(backend.issue(request))
        assert logs_in(agent.env, issued.data["username"], issued.data["password"])
        assert issued.session is not None
        child = agent.root.auth.token.lookup_accessor(issued.session.ref)["data"]
        assert child["meta"]["task"] == "claim-4711"
        assert child["meta"]["namespace"] == agent.namespace
        assert child["meta"]["credential"] == "research-db"
        assert 100 < child["ttl"] <= 120
        assert child["accessor"] != parent["accessor"]

        revoke(backend, spec, issued)

        assert not token_alive(agent.root, issued.session.ref)
        assert token_alive(agent.root, parent["accessor"])  # the parent is the user's
    finally:
        agent.root.auth.token.revoke_accessor(parent["accessor"])
        agent.root.sys.delete_policy(name=creator)


def test_token_secret_ref_without_token_create_is_denied_with_a_hint(
    agent: Agent, backend: VaultBackend
) -> None:
    parent = agent.root.auth.token.create(policies=[agent.namespace], ttl="10m")["auth"]
    agent.put_secret("vault-token", "token", parent["client_token"])
    spec = agent.spec({"tokenSecretRef": {"name": "vault-token", "key": "token"}})
    try:
        with pytest.raises(BackendDenied, match=r"auth/token/create") as caught:
            asyncio.run(backend.issue(agent.request(spec)))
        assert parent["client_token"] not in str(caught.value)
    finally:
        agent.root.auth.token.revoke_accessor(parent["accessor"])


# -- KV v2 ------------------------------------------------------------------------------------


def test_kv_reads_the_latest_and_a_pinned_version(agent: Agent, backend: VaultBackend) -> None:
    kv = agent.root.secrets.kv.v2
    path = agent.kv_path("llm")
    kv.create_or_update_secret(path=path, secret={"api_key": "sk-one", "n": 1})
    kv.create_or_update_secret(path=path, secret={"api_key": "sk-two", "opts": {"x": [1]}})
    try:
        latest = agent.spec(kv={"path": path})
        pinned = agent.spec(kv={"path": path, "version": 1})
        assert not backend.capabilities(latest).renewable
        assert backend.capabilities(latest).static

        request = agent.request(latest)
        session = asyncio.run(backend.login(request))
        issued = asyncio.run(backend.issue_with(request, session))
        first = asyncio.run(backend.issue(agent.request(pinned)))

        assert dict(issued.data) == {"api_key": "sk-two", "opts": '{"x": [1]}'}
        assert issued.lease_id == f"kv:secret/{path}#2"
        assert (issued.expires_at, issued.renewable, issued.session) == (None, False, None)
        assert not token_alive(agent.root, session.ref)  # a static read keeps no token
        assert dict(first.data) == {"api_key": "sk-one", "n": "1"}
        assert first.lease_id == f"kv:secret/{path}#1"
        asyncio.run(backend.revoke(Lease(latest, issued.lease_id, None, "r")))  # nothing to do
    finally:
        kv.delete_metadata_and_all_versions(path=path)


def test_a_vault_namespace_is_sent_with_every_request(agent: Agent, backend: VaultBackend) -> None:
    ns = agent.namespace
    agent.root.sys.create_namespace(path=ns)
    inside = hvac.Client(url=agent.env["VAULT_ADDR"], token=agent.env["VAULT_TOKEN"], namespace=ns)
    try:
        inside.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        wait_for(lambda: _kv_ready(inside), timeout=10, what="KV v2 mount ready")
        inside.secrets.kv.v2.create_or_update_secret(
            path="llm", secret={"k": "v"}, mount_point="kv"
        )
        inside.sys.create_or_update_policy(
            name="reader",
            policy='path "kv/data/llm" { capabilities = ["read"] }\n'
            'path "auth/token/create" { capabilities = ["update"] }\n',
        )
        token = inside.auth.token.create(policies=["reader"], ttl="10m")["auth"]["client_token"]
        agent.put_secret("vault-token", "token", token)
        vault = {
            "address": agent.env["VAULT_ADDR"],
            "namespace": ns,
            "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}},
            "kv": {"mount": "kv", "path": "llm"},
        }
        spec = parse_resolved({"vault": vault, "allowInsecureHTTP": True})
        issued = asyncio.run(backend.issue(agent.request(spec)))
        assert dict(issued.data) == {"k": "v"}
    finally:
        inside.adapter.close()
        agent.root.sys.delete_namespace(path=ns)


def _kv_ready(vault: Any) -> bool:
    try:
        vault.secrets.kv.v2.read_configuration(mount_point="kv")
    except VaultError:
        return False
    return True


# -- refusals and outages ------------------------------------------------------------------


def test_a_service_account_the_role_does_not_bind_is_denied(
    agent: Agent, backend: VaultBackend
) -> None:
    agent.core.create_namespaced_service_account(agent.namespace, {"metadata": {"name": "other"}})
    request = agent.request(agent.spec(), sa="other")
    with pytest.raises(BackendDenied, match="service account name not authorized"):
        asyncio.run(backend.issue(request))


def test_an_unknown_role_is_denied_with_vaults_reason(agent: Agent, backend: VaultBackend) -> None:
    spec = agent.spec({"kubernetes": {"role": "no-such-role"}})
    with pytest.raises(BackendDenied, match='invalid role name "no-such-role"'):
        asyncio.run(backend.issue(agent.request(spec)))


def test_a_missing_kv_secret_is_not_found(agent: Agent, backend: VaultBackend) -> None:
    spec = agent.spec(kv={"path": agent.kv_path("missing")})
    with pytest.raises(BackendNotFound):
        asyncio.run(backend.issue(agent.request(spec)))


def test_a_path_outside_the_policy_is_denied_and_its_token_revoked(
    agent: Agent, backend: VaultBackend
) -> None:
    # Vault checks the policy before routing: a path the token may not read answers 403,
    # whether or not it exists (database/creds/nope does not).
    spec = agent.spec(dynamic={"path": "database/creds/nope"})
    request = agent.request(spec)
    session = asyncio.run(backend.login(request))
    with pytest.raises(BackendDenied, match="permission denied"):
        asyncio.run(backend.issue_with(request, session))
    assert not token_alive(agent.root, session.ref)


def test_an_unreachable_vault_is_unavailable(agent: Agent, backend: VaultBackend) -> None:
    address = f"http://127.0.0.1:{closed_port()}"
    vault = {"address": address, "auth": {"kubernetes": {"role": "r"}}, "dynamic": {"path": "p"}}
    spec = parse_resolved({"vault": vault, "allowInsecureHTTP": True})
    with pytest.raises(BackendUnavailable, match="cannot reach Vault"):
        asyncio.run(backend.check(spec))
    with pytest.raises(BackendUnavailable):
        asyncio.run(backend.issue(agent.request(spec)))


def test_check_passes_for_the_running_openbao(agent: Agent, backend: VaultBackend) -> None:
    asyncio.run(backend.check(agent.spec()))


# -- what every request carries, and what no message or log holds ----------------------------


class Recorder(HTTPAdapter):
    """Passes requests through to OpenBao and keeps the headers they were sent with."""

    def __init__(self, seen: list[tuple[str, dict[str, str]]]) -> None:
        super().__init__()
        self.seen = seen

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.seen.append((str(request.path_url), dict(request.headers)))
        return super().send(request, **kwargs)


def test_every_request_carries_the_correlation_id(agent: Agent) -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    backend = VaultBackend(transport=lambda: Recorder(seen))
    try:
        spec = agent.spec()
        request = agent.request(spec)
        issued = asyncio.run(backend.issue(request))
        lease = Lease(spec, issued.lease_id, issued.session, request.correlation_id)
        asyncio.run(backend.renew(lease, TTL))
        asyncio.run(backend.revoke(lease))
    finally:
        asyncio.run(backend.aclose())
    paths = [path for path, _ in seen]
    assert paths == [
        "/v1/auth/kubernetes/login",
        "/v1/auth/token/renew-self",
        f"/v1/{DB_CREDS}",
        "/v1/sys/leases/renew",
        "/v1/auth/token/renew-self",
        "/v1/sys/leases/renew",
        "/v1/auth/token/revoke-self",
    ]
    assert all(h["X-Correlation-Id"] == request.correlation_id for _, h in seen)
    assert all("X-Vault-Namespace" not in h for _, h in seen)


def test_no_secret_in_any_repr_message_or_log(
    agent: Agent, backend: VaultBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = agent.spec()
    request = agent.request(spec)
    issued = asyncio.run(backend.issue(request))
    session = issued.session
    assert session is not None
    secrets = [issued.data["password"], session.secret]
    errors: list[BackendError] = []

    def collect(coro: Any) -> None:
        try:
            asyncio.run(coro)
        except BackendError as exc:
            errors.append(exc)

    collect(backend.renew(Lease(spec, "database/creds/readonly/bogus", session, "r"), TTL))
    revoke(backend, spec, issued)
    collect(backend.renew(Lease(spec, issued.lease_id, session, "r"), TTL))
    collect(backend.issue_with(request, session))
    bad_secret_id = f"bad-{uuid.uuid4()}"
    secrets.append(bad_secret_id)
    agent.put_secret("approle", "secret-id", bad_secret_id)
    auth = {"appRole": {"roleId": "nobody", "secretIdRef": {"name": "approle", "key": "secret-id"}}}
    collect(backend.issue(agent.request(agent.spec(auth))))
    bad_token = f"hvs.{uuid.uuid4().hex}"
    secrets.append(bad_token)
    agent.put_secret("vault-token", "token", bad_token)
    collect(
        backend.issue(
            agent.request(agent.spec({"tokenSecretRef": {"name": "vault-token", "key": "token"}}))
        )
    )

    assert [type(e) for e in errors] == [
        BackendInvalidConfig,
        BackendDenied,
        BackendDenied,
        BackendDenied,
        BackendDenied,
    ]
    texts = [str(issued), repr(issued), str(session.ref), caplog.text, *exception_texts(errors)]
    for secret in secrets:
        assert not any(secret in text for text in texts)
