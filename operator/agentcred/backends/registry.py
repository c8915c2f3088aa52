"""Pick the backend for an AgentCredential spec; SDKs are imported only when first needed.

``FACTORIES`` is the table of kinds: ``kind -> "module:factory"``, the factory taking the
:class:`~agentcred.backends.settings.BackendSettings` and returning the backend. A module
is imported when its kind is first asked for, so each SDK stays an optional extra.
One instance per kind, so each kind has one bounded worker pool and one connection pool
shared by every task; each is wrapped in :func:`~agentcred.backends.instrumented.instrument`,
which counts its calls. ``register`` adds a kind (tests register fakes); ``aclose``
closes every backend built, at operator shutdown.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping

from agentcred.backends.base import Backend, BackendInvalidConfig
from agentcred.backends.instrumented import instrument
from agentcred.backends.settings import BackendSettings
from agentcred.models.resolved import ResolvedCredential

log = logging.getLogger(__name__)

Factory = Callable[[BackendSettings], Backend]

FACTORIES: Mapping[str, str] = {
    "vault": "agentcred.backends.vault:VaultBackend.from_settings",
    "awsSecretsManager": (
        "agentcred.backends.aws_secrets_manager:AwsSecretsManagerBackend.from_settings"
    ),
    "awsSts": "agentcred.backends.aws_sts:AwsStsBackend.from_settings",
    "gcpSecretManager": (
        "agentcred.backends.gcp_secret_manager:GcpSecretManagerBackend.from_settings"
    ),
    "azureKeyVault": "agentcred.backends.azure_key_vault:AzureKeyVaultBackend.from_settings",
}


def load_factory(path: str) -> Factory:
    """The callable named by ``"package.module:Name.attribute"``, its module imported now."""
    module_name, _, attributes = path.partition(":")
    found: object = importlib.import_module(module_name)
    for attribute in attributes.split("."):
        found = getattr(found, attribute)
    if not callable(found):
        raise TypeError(f"{path} is not callable")
    factory: Factory = found  # the table promises the signature
    return factory


class BackendRegistry:
    def __init__(self, settings: BackendSettings | None = None) -> None:
        self.settings = settings or BackendSettings()
        self._factories: dict[str, str | Factory] = dict(FACTORIES)
        self._instances: dict[str, Backend] = {}

    def register(self, kind: str, factory: str | Factory) -> None:
        """Serve ``kind`` with ``factory`` (a callable or ``"module:factory"``), from now on."""
        self._factories[kind] = factory
        self._instances.pop(kind, None)

    def for_kind(self, kind: str) -> Backend:
        if kind not in self._instances:
            self._instances[kind] = instrument(self._build(kind))
        return self._instances[kind]

    def for_spec(self, spec: ResolvedCredential) -> Backend:
        return self.for_kind(spec.backend_kind)

    async def aclose(self) -> None:
        """Close every backend built so far (their SDK clients and thread pools); idempotent.
        One that fails to close is logged and the others are still closed."""
        built, self._instances = self._instances, {}
        for kind, backend in built.items():
            try:
                await backend.aclose()
            except Exception as exc:  # closing is best effort
                log.warning("closing the %s backend failed: %s", kind, type(exc).__name__)

    def _build(self, kind: str) -> Backend:
        factory = self._factories.get(kind)
        if factory is None:
            raise BackendInvalidConfig(f"backend {kind!r} is not available in this operator build")
        if isinstance(factory, str):
            factory = load_factory(factory)
        return factory(self.settings)
