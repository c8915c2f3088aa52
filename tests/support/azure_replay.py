"""A strict replay of real Azure Key Vault responses, and a managed-identity token endpoint.

Why this exists: no Key Vault emulator can be installed on these machines (docs/TESTBED.md),
so the Azure end-to-end tests talk to this server instead. It answers only what real
Azure answered: the recordings in ``tests/data/azure-keyvault-recordings`` (made by
the Azure SDK's own test proxy against live vaults; see the README there). Anything
else gets a loud failure and is remembered in :meth:`AzureReplay.unmatched`, which the
tests' fixture asserts is empty at teardown: an unrecorded request is a bug in how we
call Azure (another api-version, another path, another query), never silently
answered.

The vault (HTTPS on 127.0.0.1, a free port, a certificate from
:mod:`agentcred_testbed.certs`; clients trust :attr:`AzureReplay.ca_bundle`):

* A request is matched on its method, its exact path (the latest version of a secret
  is ``/secrets/{name}/``, with a trailing slash, while ``/secrets/{name}`` is PUT and
  DELETE only) and its query parameters as a multiset (``api-version`` included;
  recorded query order is not significant, recorded values are).
* Without an ``Authorization`` header, a recorded request is answered with the
  recording's 401 Bearer challenge, headers and body exactly as recorded (Key Vault
  challenges every unauthenticated request; the Python SDK sends its first request of
  a client without a token, and without a body for a PUT).
* With ``Authorization: Bearer <token>``, the token must be one the token endpoint below
  issued for the challenge's resource, ``https://vault.azure.net``; the answer is the
  recorded authorized one. A recorded GET is served any number of times (the operator
  re-reads static secrets on every refresh); if one GET was recorded with several
  answers they are served in order and the last one repeats. Any other method is served
  once per recorded answer, in recorded order, and only for the recorded JSON body.
* Answers go out as recorded (status, headers, body) with two changes: the body is
  serialized as compact JSON, and ``Content-Length`` is recomputed (it equals the
  recorded one; :class:`Recordings` checks that when it loads them), and a ``nextLink``
  is rewritten from the recorded ``https://vaultname.vault.azure.net:443`` to this
  server so that paging works. The secrets' ``id`` fields keep the recorded host
  (``vaultname.vault.azure.net``): clients never follow them, and Key Vault's ids name
  the vault's own host, whatever address the client used to reach it.
* Anything else is answered ``599 Unrecorded Request`` with a Key Vault shaped error
  body (``{"error": {"code": "UnrecordedRequest", "message": ...}}``) naming the request
  (method, path and query; never a body), and remembered.

State-changing requests of the recordings (PUT, PATCH, DELETE) do not change what the
recorded GETs answer: each recorded GET answer is what Azure said at that moment of the
recording, and that is what the tests assert against.

The token endpoint (plain HTTP on 127.0.0.1, like the real IMDS): it speaks the Azure
Instance Metadata Service protocol (``GET /metadata/identity/oauth2/token?api-version=
2018-02-01&resource=...`` with ``Metadata: true``). azure-identity's
``ManagedIdentityCredential``, and so the ``DefaultAzureCredential`` the operator uses,
asks ``$AZURE_POD_IDENTITY_AUTHORITY_HOST`` instead of 169.254.169.254 when it is set
(and then skips its IMDS probe), the same trick ``agentcred_testbed.lowkey`` uses with
Lowkey Vault's token port. Tokens are random strings the vault then accepts; a token
request for another resource, or without ``Metadata: true``, is remembered as unmatched.

Both servers run in threads of the test process (:meth:`AzureReplay.start` /
:meth:`AzureReplay.stop`); an operator started as a child process reaches them over
127.0.0.1 like any other server.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from agentcred_testbed import certs

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "azure-keyvault-recordings"
PYTHON_API_VERSION = "2025-07-01"  # the Python SDK's recordings
JS_API_VERSION = "7.6-preview.2"  # the JS SDK's disabled-secret recording
VAULT_RESOURCE = "https://vault.azure.net"  # what every recorded challenge names
IMDS_PATH = "/metadata/identity/oauth2/token"
IMDS_API_VERSION = "2018-02-01"
UNRECORDED = 599
TOKEN_LIFETIME = 3600


def compact(body: Any) -> bytes:
    """A JSON body as Key Vault sends it: no spaces (the recorded Content-Length says so)."""
    if body is None:
        return b""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class RequestKey:
    """What a request is matched on: method, exact path, query parameters as a multiset."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, method: str, target: str) -> RequestKey:
        """The key of a request line's target (``/path?query``) or of a full recorded URI."""
        url = urlsplit(target)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        return cls(method.upper(), url.path, tuple(sorted(pairs)))

    def __str__(self) -> str:
        query = urlencode(self.query, safe="/$")
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Answer:
    """One recorded response, and the request body it answered."""

    source: str  # "<file name>#<entry index>"
    status: int
    headers: tuple[tuple[str, str], ...]
    body: Any
    request_body: Any


@dataclass(frozen=True)
class Exchange:
    """One request the vault received, and what it answered (``source`` None: unrecorded)."""

    key: RequestKey
    authorized: bool
    status: int
    source: str | None


@dataclass(frozen=True)
class Unmatched:
    """A request nothing was recorded for (or that broke the recorded protocol)."""

    server: str  # "vault" or "token endpoint"
    request: str  # method, path and query
    reason: str

    def __str__(self) -> str:
        return f"{self.server}: {self.request}: {self.reason}"


class Recordings:
    """The recorded interactions of some recording files, indexed for strict matching."""

    def __init__(self, files: Iterable[Path]) -> None:
        self.files = sorted(files)
        if not self.files:
            raise ValueError("no Azure Key Vault recordings given")
        self.challenges: dict[RequestKey, Answer] = {}
        self.answers: dict[RequestKey, list[Answer]] = {}
        self.secret_values: set[str] = set()
        for path in self.files:
            self._load(path)

    @classmethod
    def all(cls) -> Recordings:
        return cls(RECORDINGS.rglob("*.json"))

    def _load(self, path: Path) -> None:
        entries = json.loads(path.read_text(encoding="utf-8"))["Entries"]
        answers: list[tuple[RequestKey, Answer]] = []
        challenge: Answer | None = None
        for index, entry in enumerate(entries):
            key = RequestKey.of(entry["RequestMethod"], entry["RequestUri"])
            headers = tuple((str(k), str(v)) for k, v in entry["ResponseHeaders"].items())
            answer = Answer(
                f"{path.name}#{index}",
                int(entry["StatusCode"]),
                headers,
                entry["ResponseBody"],
                entry["RequestBody"],
            )
            recorded_length = dict(headers).get("Content-Length")
            if recorded_length is not None and int(recorded_length) != len(compact(answer.body)):
                raise ValueError(
                    f"{answer.source}: Content-Length {recorded_length} is not the length of"
                    " the compact JSON of the recorded body: the recording was altered"
                )
            for body in (entry["RequestBody"], entry["ResponseBody"]):
                if isinstance(body, dict) and isinstance(body.get("value"), str):
                    self.secret_values.add(body["value"])
            if answer.status == 401 and "WWW-Authenticate" in dict(headers):
                challenge = challenge or answer
            else:
                answers.append((key, answer))
        if challenge is None:
            raise ValueError(f"{path.name}: no recorded 401 Bearer challenge")
        for key, answer in answers:
            known = self.challenges.setdefault(key, challenge)
            if known.headers != challenge.headers or known.body != challenge.body:
                raise ValueError(f"{key} is recorded behind two different challenges")
            self.answers.setdefault(key, []).append(answer)


class _Server(ThreadingHTTPServer):
    """A threaded HTTP(S) server on 127.0.0.1 that can close its open connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.context = context
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, not in the
        # accept loop: a client that stalls or rejects the certificate holds up nobody.
        conn: socket.socket = request
        conn.settimeout(30)
        if self.context is not None:
            try:
                conn = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return  # e.g. a client that does not trust the CA: its own error says so
        with self._lock:
            self._open.add(conn)
        try:
            super().finish_request(conn, client_address)
        finally:
            with self._lock:
                self._open.discard(conn)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection resets and timeouts are the client's business, not a test failure."""

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


Responder = Callable[["_Handler", bytes], tuple[int, list[tuple[str, str]], bytes]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    timeout = 30
    respond: Responder  # set on the subclass made for each server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = type(self).respond(self, body)
        reason = "Unrecorded Request" if status == UNRECORDED else None
        self.send_response_only(status, reason)  # no Server/Date of ours: as recorded
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exchanges are kept in :attr:`AzureReplay.exchanges` instead."""


def _handler(respond: Responder) -> type[_Handler]:
    return type("ReplayHandler", (_Handler,), {"respond": staticmethod(respond)})


class AzureReplay:
    """The vault replay and its token endpoint; see the module docstring."""

    def __init__(self, folder: Path, recordings: Recordings | None = None) -> None:
        self.folder = folder
        self.recordings = recordings or Recordings.all()
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._unmatched: list[Unmatched] = []
        self._exchanges: list[Exchange] = []
        self._gets: dict[RequestKey, int] = {}
        self._consumed: set[str] = set()
        self._vault: _Server | None = None
        self._imds: _Server | None = None
        self._threads: list[threading.Thread] = []
        self.ca_bundle = folder / "ca.crt"

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> AzureReplay:
        ca = certs.make_ca(self.folder, "agentcred azure replay CA")
        leaf = certs.make_leaf(
            self.folder,
            "vault",
            ca,
            common_name="127.0.0.1",
            server_names=("localhost",),
            server_ips=("127.0.0.1",),
        )
        self.ca_bundle = ca.cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(leaf.cert, leaf.key)
        self._vault = _Server(_handler(self._answer_vault), context)
        self._imds = _Server(_handler(self._answer_token), None)
        for server in (self._vault, self._imds):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._vault, self._imds):
            if server is not None:
                server.shutdown()
                server.server_close()
                server.close_connections()
        for thread in self._threads:
            thread.join(10)
        self._threads = []

    def __enter__(self) -> AzureReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses and settings ------------------------------------------------------

    @property
    def vault_url(self) -> str:
        assert self._vault is not None, "start() first"
        return f"https://127.0.0.1:{self._vault.port}"

    @property
    def token_host(self) -> str:
        assert self._imds is not None, "start() first"
        return f"http://127.0.0.1:{self._imds.port}"

    def identity_env(self) -> dict[str, str]:
        """What points azure-identity's managed identity (IMDS) client at the token endpoint."""
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.token_host}

    def operator_env(self, api_version: str = PYTHON_API_VERSION) -> dict[str, str]:
        """An operator's settings for this vault: the recordings' api-version, the replay's
        CA for Key Vault connections only, and the challenge-resource check off (the vault
        is 127.0.0.1, not under *.vault.azure.net)."""
        return {
            **self.identity_env(),
            "AGENTCRED_AZURE_API_VERSION": api_version,
            "AGENTCRED_AZURE_CA_BUNDLE": str(self.ca_bundle),
            "AGENTCRED_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
        }

    # -- what happened ---------------------------------------------------------------

    def unmatched(self) -> list[Unmatched]:
        with self._lock:
            return list(self._unmatched)

    def take_unmatched(self) -> list[Unmatched]:
        """The unmatched requests so far, forgotten: for tests that provoke them on purpose."""
        with self._lock:
            taken, self._unmatched = self._unmatched, []
            return taken

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def served(self, method: str, path: str, status: int = 200) -> int:
        """How many authorized requests for ``path`` were answered ``status`` as recorded."""
        return sum(
            1
            for e in self.exchanges()
            if e.authorized
            and e.source is not None
            and (e.key.method, e.key.path, e.status) == (method, path, status)
        )

    # -- the vault -------------------------------------------------------------------

    def _answer_vault(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        key = RequestKey.of(request.command, request.path)
        authorization = request.headers.get("Authorization")
        with self._lock:
            answer, problem = self._match(key, authorization, body)
            if answer is None:
                self._unmatched.append(Unmatched("vault", str(key), problem))
                self._exchanges.append(Exchange(key, authorization is not None, UNRECORDED, None))
                error = {
                    "error": {
                        "code": "UnrecordedRequest",
                        "message": f"azure replay has no recorded answer for {key}: {problem}",
                    }
                }
                return (
                    UNRECORDED,
                    [("Content-Type", "application/json; charset=utf-8")],
                    compact(error),
                )
            self._exchanges.append(
                Exchange(key, authorization is not None, answer.status, answer.source)
            )
        payload = answer.body
        if isinstance(payload, dict) and isinstance(payload.get("nextLink"), str):
            link = urlsplit(payload["nextLink"])
            here = urlsplit(self.vault_url)
            payload = {**payload, "nextLink": link._replace(netloc=here.netloc).geturl()}
        return answer.status, list(answer.headers), compact(payload)

    def _match(
        self, key: RequestKey, authorization: str | None, body: bytes
    ) -> tuple[Answer | None, str]:
        """The recorded answer to this request, or None and why not (call with the lock)."""
        challenge = self.recordings.challenges.get(key)
        if challenge is None:
            return None, "no recording has this method, path and query"
        if authorization is None:
            return challenge, ""
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return None, (
                "Authorization is not a bearer token the replay's token endpoint issued"
                f" for {VAULT_RESOURCE}"
            )
        answers = self.recordings.answers[key]
        if key.method == "GET":
            served = self._gets.get(key, 0)
            self._gets[key] = served + 1
            return answers[min(served, len(answers) - 1)], ""
        try:
            sent = json.loads(body) if body else None
        except ValueError:
            return None, "the request body is not JSON"
        for answer in answers:
            if answer.source not in self._consumed and answer.request_body == sent:
                self._consumed.add(answer.source)
                return answer, ""
        return None, "no recorded answer left for this request with this body"

    # -- the token endpoint ----------------------------------------------------------

    def _answer_token(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        key = RequestKey.of(request.command, request.path)
        params = dict(key.query)
        problem = ""
        if (key.method, key.path) != ("GET", IMDS_PATH):
            problem = f"the token endpoint serves GET {IMDS_PATH} only"
        elif request.headers.get("Metadata") != "true":
            problem = "IMDS requires the header Metadata: true"
        elif params != {"api-version": IMDS_API_VERSION, "resource": VAULT_RESOURCE}:
            problem = f"expected api-version={IMDS_API_VERSION} and resource={VAULT_RESOURCE} only"
        headers = [("Content-Type", "application/json; charset=utf-8")]
        if problem:
            with self._lock:
                self._unmatched.append(Unmatched("token endpoint", str(key), problem))
            error = {"error": "invalid_request", "error_description": problem}
            return 400, headers, compact(error)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        now = int(time.time())
        # The IMDS answer's shape: every number a string.
        answer: Mapping[str, str] = {
            "access_token": token,
            "client_id": "00000000-0000-0000-0000-000000000000",
            "expires_in": str(TOKEN_LIFETIME),
            "expires_on": str(now + TOKEN_LIFETIME),
            "ext_expires_in": str(TOKEN_LIFETIME),
            "not_before": str(now),
            "resource": VAULT_RESOURCE,
            "token_type": "Bearer",
        }
        return 200, headers, compact(answer)
