"""Per-backend adapters for the conformance suite: how to make a secret exist, rotate,
be missing or be denied on each real server, and how to run a private copy of the
server for the stop/restart case. The cases themselves are in test_conformance.py."""

from __future__ import annotations

import json
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from agentcred_testbed import drongo, moto, openbao
from agentcred_testbed.procs import PORT_OVERRIDE, StateDir, free_port
from support import vault
from support.scenario import Scenario, default_block


@dataclass
class Server:
    """A private copy of a backend's server (for the stop/restart case)."""

    module: Any
    state: StateDir
    base_env: dict[str, str]
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> dict[str, str]:
        self.env = self.module.up(self.state, {**self.base_env, PORT_OVERRIDE: str(self.port)})
        return self.env

    def stop(self) -> None:
        self.module.down(self.state)


class Backend:
    """What the suite needs from one backend kind."""

    name = ""
    static = True
    keys: frozenset[str] = frozenset()
    server_module: Any = None

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def cleanup(self) -> None:
        while self.servers:
            self.servers.pop().stop()

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        raise NotImplementedError

    def rotate(self, env: dict[str, str]) -> dict[str, str]:
        raise NotImplementedError

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def denied(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def server_env(self, testbed: dict[str, str]) -> dict[str, str]:
        return dict(testbed)

    kind = ""

    def point_at(
        self, scene: Scenario, spec: dict[str, Any], server_env: dict[str, str]
    ) -> dict[str, Any]:
        """``spec`` issued through a new backend pointing at ``server_env``'s server."""
        block = default_block(self.kind, server_env)
        spec["backend"] = scene.backend(self.kind, block, suffix=f"-{uuid.uuid4().hex[:6]}")
        return spec

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        """Recreate on a (re)started private server what `credential` needs."""
        raise NotImplementedError


class VaultDynamic(Backend):
    name, static, server_module, kind = "vault-dynamic", False, openbao, "vault"
    keys = frozenset({"username", "password"})

    def _role(self, scene: Scenario, env: dict[str, str], **kw: Any) -> str:
        if "agent" not in [
            a.metadata.name for a in scene.core.list_namespaced_service_account(scene.ns).items
        ]:
            scene.service_account("agent")
        return vault.kubernetes_role(env, scene.ns, "agent", **kw)

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        role = self._role(scene, env)
        return {
            "vault": {
                "role": role,
                "dynamic": {"path": "database/creds/readonly"},
            },
            **kw,
        }

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        role = self._role(scene, env, rules='path "database/creds/*" { capabilities = ["read"] }')
        return {
            "vault": {
                "role": role,
                "dynamic": {"path": "database/creds/no-such-role"},
            }
        }

    def denied(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        scene.service_account("intruder")
        role = self._role(scene, env)  # bound to "agent" only
        return {
            "vault": {
                "role": role,
                "dynamic": {"path": "database/creds/readonly"},
            }
        }

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        vault.kubernetes_role(server_env, scene.ns, "agent")


class VaultKV(VaultDynamic):
    name, static = "vault-kv", True
    keys = frozenset({"api_key", "org"})

    def _path(self, scene: Scenario) -> str:
        return f"agents/{scene.ns}/conformance"

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        self.ns_path = self._path(scene)
        vault.admin(env).secrets.kv.v2.create_or_update_secret(
            path=self.ns_path, secret={"api_key": "kv-value-0001", "org": "acme"}
        )
        role = self._role(scene, env)
        return {
            "vault": {"role": role, "kv": {"path": self.ns_path}},
            **kw,
        }

    def rotate(self, env: dict[str, str]) -> dict[str, str]:
        data = {"api_key": "kv-value-0002", "org": "acme"}
        vault.admin(env).secrets.kv.v2.create_or_update_secret(path=self.ns_path, secret=data)
        return data

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        role = self._role(scene, env)
        return {
            "vault": {
                "role": role,
                "kv": {"path": f"agents/{scene.ns}/absent"},
            }
        }

    def denied(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        spec = self.credential(scene, env)
        scene.service_account("intruder")
        return spec

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        vault.admin(server_env).secrets.kv.v2.create_or_update_secret(
            path=self._path(scene), secret={"api_key": "kv-value-0001", "org": "acme"}
        )
        vault.kubernetes_role(server_env, scene.ns, "agent")


class AwsSecretsManager(Backend):
    name, static, server_module, kind = "aws-secrets-manager", True, moto, "awsSecretsManager"
    keys = frozenset({"api_key", "org"})

    def _client(self, env: dict[str, str]) -> Any:
        return boto3.client(
            "secretsmanager",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        self.secret_id = f"agents/{scene.ns}/conformance"
        self.env = env
        self._client(env).create_secret(
            Name=self.secret_id,
            SecretString=json.dumps({"api_key": "sm-value-0001", "org": "acme"}),
        )
        return {"awsSecretsManager": {"secretId": self.secret_id}, **kw}

    def rotate(self, env: dict[str, str]) -> dict[str, str]:
        data = {"api_key": "sm-value-0002", "org": "acme"}
        self._client(env).put_secret_value(SecretId=self.secret_id, SecretString=json.dumps(data))
        return data

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        return {"awsSecretsManager": {"secretId": f"agents/{scene.ns}/absent"}}

    def denied(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        server_env = start_strict_moto(self, scene, lambda e: self.seed(scene, e))
        return self.point_at(
            scene,
            self.missing(scene, env)
            | {"awsSecretsManager": {"secretId": f"agents/{scene.ns}/conformance"}},
            server_env,
        )

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        self._client(server_env).create_secret(
            Name=f"agents/{scene.ns}/conformance",
            SecretString=json.dumps({"api_key": "sm-value-0001", "org": "acme"}),
        )


class AwsSts(Backend):
    name, static, server_module, kind = "aws-sts", False, moto, "awsSts"
    keys = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        return {
            "awsSts": {"roleArn": "arn:aws:iam::123456789012:role/agent", "durationSeconds": 900},
            **kw,
        }

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError  # STS has no "missing secret"; a bad role is InvalidConfig

    def denied(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        server_env = start_strict_moto(self, scene, lambda e: None)
        return self.point_at(scene, self.credential(scene, env), server_env)

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        return None


class GcpSecretManager(Backend):
    name, static, server_module, kind = "gcp-secret-manager", True, drongo, "gcpSecretManager"
    keys = frozenset({"api_key", "org"})

    def _client(self, env: dict[str, str]) -> Any:
        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=env["GCP_SECRET_MANAGER_ENDPOINT"]),
        )

    def _create(self, env: dict[str, str], secret: str, payload: dict[str, str]) -> None:
        client = self._client(env)
        parent = f"projects/{env['GCP_PROJECT']}"
        created = client.create_secret(
            request={
                "parent": parent,
                "secret_id": secret,
                "secret": {"replication": {"automatic": {}}},
            }
        )
        client.add_secret_version(
            request={"parent": created.name, "payload": {"data": json.dumps(payload).encode()}}
        )

    def credential(self, scene: Scenario, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        self.secret = f"conf-{uuid.uuid4().hex[:8]}"
        self._create(env, self.secret, {"api_key": "gcp-value-0001", "org": "acme"})
        return {
            "gcpSecretManager": {"secret": self.secret},
            **kw,
        }

    def rotate(self, env: dict[str, str]) -> dict[str, str]:
        data = {"api_key": "gcp-value-0002", "org": "acme"}
        name = f"projects/{env['GCP_PROJECT']}/secrets/{self.secret}"
        self._client(env).add_secret_version(
            request={"parent": name, "payload": {"data": json.dumps(data).encode()}}
        )
        return data

    def missing(self, scene: Scenario, env: dict[str, str]) -> dict[str, Any]:
        return {"gcpSecretManager": {"secret": "absent-secret"}}

    def seed(self, scene: Scenario, server_env: dict[str, str]) -> None:
        self._create(server_env, self.secret, {"api_key": "gcp-value-0001", "org": "acme"})


def start_strict_moto(backend: Backend, scene: Scenario, seed: Any) -> dict[str, str]:
    """A private moto that checks credentials (the operator's test keys are unknown to its
    IAM, so every call is refused), stopped by ``cleanup``."""
    server = Server(moto, StateDir(Path(tempfile.mkdtemp(prefix="strict-moto-"))), {})
    backend.servers.append(server)
    server_env = server.start()
    seed(server_env)
    request = urllib.request.Request(  # noqa: S310 - our own moto on 127.0.0.1
        f"{server_env['AWS_ENDPOINT_URL']}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
    return server_env


def address_via(server_env: dict[str, str], port: int) -> dict[str, str]:
    """The server's variables with its address swapped for the forwarder's port."""
    local = "http://127.0.0.1:"
    return {k: f"{local}{port}" if v.startswith(local) else v for k, v in server_env.items()}


def private_server(backend: Backend, testbed: dict[str, str], folder: Path) -> Server:
    return Server(
        backend.server_module, StateDir(folder / backend.name), backend.server_env(testbed)
    )
