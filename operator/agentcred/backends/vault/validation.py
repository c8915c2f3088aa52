"""The checks of a Vault credential's spec that need no I/O (``Backend.validate``).

Every other module starts from :func:`target`, so a spec that reaches a Vault call has
exactly one auth method, exactly one of ``dynamic`` or ``kv``, and an address the policy
accepts.
"""

from __future__ import annotations

from agentcred.backends.base import BackendInvalidConfig
from agentcred.models.errors import NotAllowed, SpecError
from agentcred.models.policy import check_url
from agentcred.models.resolved import ResolvedCredential, VaultSpec


def target(spec: ResolvedCredential) -> tuple[VaultSpec, str]:
    """The Vault block and address of ``spec``, checked without I/O."""
    vault = spec.vault
    if vault is None:
        raise BackendInvalidConfig("spec.vault is not set: this is not a Vault credential")
    address = vault.address.rstrip("/")
    try:  # the same rule the policy applied when the credential was resolved
        check_url("", "vault.address", address, spec.allow_insecure_http)
    except (SpecError, NotAllowed) as exc:
        raise BackendInvalidConfig(f"the backend's {exc}") from None
    auth = vault.auth
    if sum(m is not None for m in (auth.kubernetes, auth.app_role, auth.token_secret_ref)) != 1:
        raise BackendInvalidConfig("vault.auth needs exactly one of kubernetes, appRole, token")
    if (vault.dynamic is None) == (vault.kv is None):
        raise BackendInvalidConfig("spec.vault needs exactly one of dynamic or kv")
    return vault, address
