"""What the Azure recordings hold, named once for the Azure tests (values copied from
tests/data/azure-keyvault-recordings; the tests read them back through the replay, so a wrong
one fails)."""

from __future__ import annotations

import datetime

from support.azure_replay import JS_API_VERSION, PYTHON_API_VERSION

__all__ = ["JS_API_VERSION", "PYTHON_API_VERSION"]

# test_secret_crud_operations: the second PUT set nbf 2015-02-01 and exp 2050-02-02, then
# the latest version and that same version were read (200), before a PATCH disabled it.
CRUD = "livekvtestcrud-secret167730f5"
CRUD_VERSION = "3a8b9c9caa3d4e21b206a81bead0fde3"
CRUD_FIRST_VERSION = "fab0e24aaed745b88b140492199bd0d4"  # created, never read
CRUD_ID = f"https://vaultname.vault.azure.net/secrets/{CRUD}/{CRUD_VERSION}"
CRUD_VALUE = "crud_secret_value"
CRUD_EXPIRES = datetime.datetime.fromtimestamp(2527401600, datetime.UTC)

# test_previous_version_property_is_accessible: one version, no dates, latest read (200).
PLAIN = "livekvtestprevious-versiond720382d"
PLAIN_ID = f"https://vaultname.vault.azure.net/secrets/{PLAIN}/594f41d559ee41e08c722deb6f3208a5"
PLAIN_VALUE = "secret-value"

# test_40x_handling: GET of the latest version of a secret that does not exist (404).
MISSING = "secret-that-does-not-exist"

# JS recording_cant_get_a_disabled_secret (api-version 7.6-preview.2): created disabled,
# then its latest version read: 403 Forbidden, innererror SecretDisabled.
DISABLED = "CRUDSecretName-cantgetadisabledsecret-"
DISABLED_VALUE = "SECRET_VALUE"

# test_list_versions: seven versions, listed six per page.
VERSIONED = "livekvtestsecVer53722d53"

# test_get_secret_accepts_out_content_type: latest read with outContentType (400).
CONTENT_TYPE = "livekvtestcontent-typedf813658"
