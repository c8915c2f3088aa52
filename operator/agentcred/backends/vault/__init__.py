"""HashiCorp Vault / OpenBao: every credential under its own token, logged in as the agent.

Why one token per credential. For every credential it issues, the operator logs in *as
the agent* and reads the dynamic path with the token it gets. Vault makes that token the
parent of the lease, so:

* revoking the token (``auth/token/revoke-self``, allowed by Vault's ``default``
  policy) revokes the lease with it: ``revoke`` needs nothing but the token;
* the caller stores the token (``Session.secret``) in a Kubernetes Secret *before* the
  lease exists (``login``, persist, then ``issue_with``), so every lease is findable
  from the cluster, even one the operator issued but died before recording;
* if the operator is down, the token's TTL bounds the lease (Vault revokes a token's
  leases when it expires).

Static KV reads keep no token (their login token is revoked right after the read);
``revoke`` of one returns at once. Paths a token has no policy for answer 403
(BackendDenied), before Vault looks whether they exist; 404 (BackendNotFound) comes only
from paths the policy allows (e.g. a missing KV key).

The package is split by concern, as External Secrets' ``providers/v1/vault`` is:

* ``backend``    -- ``VaultBackend``, the Backend interface, thin: wires the others;
* ``validation`` -- the spec checks that need no I/O (``target``);
* ``auth``       -- logging in as the agent (Kubernetes, AppRole, child of a token);
* ``tokens``     -- the per-credential token: parsing a login answer, revoking it;
* ``leases``     -- dynamic reads, lease renewal, expiry and validity;
* ``kv``         -- static KV v2 reads;
* ``connection`` -- pooled HTTP per address, hvac clients, the one call path;
* ``errors``     -- hvac/requests failures mapped to agentcred's typed errors;
* ``answers``    -- parsing Vault's JSON answers (pure).

Importing this package imports hvac: the registry names
``agentcred.backends.vault:VaultBackend.from_settings`` and loads it only when a
CredentialBackend of kind ``vault`` is first used.
"""

from agentcred.backends.vault.backend import KIND, VaultBackend
from agentcred.backends.vault.errors import vault_error

__all__ = ["KIND", "VaultBackend", "vault_error"]
