"""The replay server itself (support.azure_replay): it must answer exactly what Azure
answered, handle the recordings' quirks the way the SDK needs, and refuse the rest.

The Azure SDK is the client wherever it can be (paging, a query parameter order of its
own, a state-changing request); raw HTTPS where the test is about bytes on the wire.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from recorded import CONTENT_TYPE, CRUD, CRUD_VALUE, MISSING, PYTHON_API_VERSION, VERSIONED

from support.azure_replay import (
    IMDS_API_VERSION,
    IMDS_PATH,
    RECORDINGS,
    VAULT_RESOURCE,
    AzureReplay,
    Recordings,
    compact,
)

pytestmark = pytest.mark.e2e

PYTHON_FILE = "test_secrets_client.pyTestSecretClient{}[2025-07-01].json"


def entries(test: str) -> list[dict[str, object]]:
    doc = json.loads((RECORDINGS / PYTHON_FILE.format(test)).read_text())
    found: list[dict[str, object]] = doc["Entries"]
    return found


def sdk_client(replay: AzureReplay, credential: DefaultAzureCredential) -> SecretClient:
    return SecretClient(
        replay.vault_url,
        credential,
        api_version=PYTHON_API_VERSION,
        verify_challenge_resource=False,
        connection_verify=str(replay.ca_bundle),
        retry_total=0,
    )


def token(replay: AzureReplay, resource: str = VAULT_RESOURCE) -> requests.Response:
    return requests.get(
        f"{replay.token_host}{IMDS_PATH}",
        params={"api-version": IMDS_API_VERSION, "resource": resource},
        headers={"Metadata": "true"},
        timeout=10,
    )


def test_an_unauthenticated_request_gets_the_recorded_challenge_byte_for_byte(
    azure_replay: AzureReplay,
) -> None:
    recorded = entries("test_40x_handling")[0]
    url = f"{azure_replay.vault_url}/secrets/{MISSING}/?api-version={PYTHON_API_VERSION}"

    answer = requests.get(url, verify=str(azure_replay.ca_bundle), timeout=10)

    assert answer.status_code == recorded["StatusCode"] == 401
    headers = recorded["ResponseHeaders"]
    assert isinstance(headers, dict)
    for name, value in headers.items():
        assert answer.headers[name] == value, name
    assert answer.headers["WWW-Authenticate"].startswith('Bearer authorization="https://login.')
    assert answer.content == compact(recorded["ResponseBody"])
    assert answer.headers["Content-Length"] == headers["Content-Length"] == "108"


def test_paging_follows_the_next_link_rewritten_to_the_replay(
    azure_replay: AzureReplay, managed_identity: None
) -> None:
    recorded = entries("test_list_versions")
    pages = [e["ResponseBody"] for e in recorded if e["RequestMethod"] == "GET"]
    expected = [item["id"] for page in pages if isinstance(page, dict) for item in page["value"]]

    with DefaultAzureCredential() as credential, sdk_client(azure_replay, credential) as client:
        listed = [
            p.id for p in client.list_properties_of_secret_versions(VERSIONED, max_page_size=6)
        ]

    assert len(listed) == 7
    assert listed == expected
    # Page 2 was asked of the replay itself, with the recorded literal $skiptoken.
    second = [e for e in azure_replay.exchanges() if ("$skiptoken", "Sanitized") in e.key.query]
    assert [(e.key.path, e.status) for e in second] == [(f"/secrets/{VERSIONED}/versions", 200)]


def test_query_parameters_match_in_any_order(
    azure_replay: AzureReplay, managed_identity: None
) -> None:
    # The SDK puts outContentType before api-version, as recorded; a client that sends
    # them the other way round asks the same thing and gets the same (recorded 400) answer.
    with DefaultAzureCredential() as credential, sdk_client(azure_replay, credential) as client:
        with pytest.raises(HttpResponseError) as caught:
            client.get_secret(CONTENT_TYPE, out_content_type="application/x-pem-file")
        reordered = client.send_request(
            HttpRequest(
                "GET",
                f"/secrets/{CONTENT_TYPE}/?api-version={PYTHON_API_VERSION}"
                "&outContentType=application%2Fx-pem-file",
            )
        )

    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "BadParameter"
    assert reordered.status_code == 400
    assert reordered.json()["error"]["code"] == "BadParameter"


def test_a_state_change_is_served_once_and_only_for_its_recorded_body(
    azure_replay: AzureReplay, managed_identity: None
) -> None:
    with DefaultAzureCredential() as credential, sdk_client(azure_replay, credential) as client:
        created = client.set_secret(CRUD, CRUD_VALUE)  # the first recorded PUT, after its 401
        with pytest.raises(HttpResponseError) as again:
            client.set_secret(CRUD, CRUD_VALUE)  # recorded once: the next PUT had other fields

    assert created.properties.version == "fab0e24aaed745b88b140492199bd0d4"
    assert again.value.status_code == 599
    unmatched = azure_replay.take_unmatched()
    assert [u.reason for u in unmatched] == [
        "no recorded answer left for this request with this body"
    ]


def test_a_token_the_endpoint_did_not_issue_is_refused(azure_replay: AzureReplay) -> None:
    url = f"{azure_replay.vault_url}/secrets/{CRUD}/?api-version={PYTHON_API_VERSION}"
    forged = requests.get(
        url,
        headers={"Authorization": "Bearer forged"},
        verify=str(azure_replay.ca_bundle),
        timeout=10,
    )
    issued = token(azure_replay).json()["access_token"]
    genuine = requests.get(
        url,
        headers={"Authorization": f"Bearer {issued}"},
        verify=str(azure_replay.ca_bundle),
        timeout=10,
    )

    assert forged.status_code == 599
    assert "bearer token" in forged.json()["error"]["message"]
    assert genuine.status_code == 200 and genuine.json()["value"] == CRUD_VALUE
    assert [u.server for u in azure_replay.take_unmatched()] == ["vault"]


def test_the_token_endpoint_serves_the_vault_resource_only(azure_replay: AzureReplay) -> None:
    good = token(azure_replay)
    other = token(azure_replay, "https://management.azure.com")
    no_header = requests.get(
        f"{azure_replay.token_host}{IMDS_PATH}",
        params={"api-version": IMDS_API_VERSION, "resource": VAULT_RESOURCE},
        timeout=10,
    )

    assert good.status_code == 200
    body = good.json()
    assert body["token_type"] == "Bearer" and body["resource"] == VAULT_RESOURCE
    assert int(body["expires_in"]) > 0
    assert (other.status_code, no_header.status_code) == (400, 400)
    reasons = [u.reason for u in azure_replay.take_unmatched()]
    assert len(reasons) == 2
    assert "resource=https://vault.azure.net" in reasons[0]
    assert "Metadata: true" in reasons[1]


def test_an_altered_recording_is_refused_when_loaded(tmp_path: Path) -> None:
    name = PYTHON_FILE.format("test_40x_handling")
    copy = tmp_path / name
    shutil.copy(RECORDINGS / name, copy)
    doc = json.loads(copy.read_text())
    doc["Entries"][1]["ResponseBody"]["error"]["message"] += " (edited)"
    copy.write_text(json.dumps(doc, indent=2))

    with pytest.raises(ValueError, match="Content-Length 323 is not the length"):
        Recordings([copy])


def test_every_recording_loads_and_is_indexed() -> None:
    recordings = Recordings.all()

    assert len(recordings.files) == 6
    latest = [k for k in recordings.answers if k.method == "GET" and k.path == f"/secrets/{CRUD}/"]
    assert [dict(k.query) for k in latest] == [{"api-version": PYTHON_API_VERSION}]
    assert {"crud_secret_value", "secret-value", "SECRET_VALUE"} <= recordings.secret_values
