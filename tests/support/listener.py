"""An attacker's host on 127.0.0.1: accepts TCP connections and records what arrives.

The adversarial suite points a platform backend (or a forged record) at it and then
asserts it saw nothing: zero connections means no token, no request, nothing sent.
It records at the TCP level, so a TLS client (Azure, https://) counts as well as a
plain HTTP one, and it never answers, so nothing can be learned from it either.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Listener:
    """``tarpit=True``: accept, read, then never answer and never close (a backend that
    hangs every caller until its own timeout)."""

    def __init__(self, tarpit: bool = False) -> None:
        self.tarpit = tarpit
        self._held: list[socket.socket] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.received: list[bytes] = []  # first bytes of every connection
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.received)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            data = b""
            with contextlib.suppress(OSError):
                data = conn.recv(4096)
            with self._lock:
                self.received.append(data)
                if self.tarpit and not self._closed:
                    self._held.append(conn)
                    continue
            conn.close()

    def close(self) -> None:
        """Stop listening and drop every held connection, one accepted while closing too
        (else its caller would wait out its own read timeout)."""
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()


@contextmanager
def listening(tarpit: bool = False) -> Iterator[Listener]:
    listener = Listener(tarpit)
    try:
        yield listener
    finally:
        listener.close()
