"""Small servers on loopback for tests that put something between a client and its server.

``LoopbackServer`` listens and hands each connection to its subclass; ``read_request`` reads one
HTTP/1.1 request off a connection; ``pipe`` copies bytes one way between two sockets (a proxy
runs one each way).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import BinaryIO, NamedTuple


class LoopbackServer:
    """Listens on 127.0.0.1 (a free port) and gives each connection to ``handle``, on a thread of
    its own, until ``close``. A subclass sets its own attributes before calling ``__init__``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        # A timeout, so that close() ends this thread: closing a socket does not wake an accept().
        self.listener.settimeout(0.2)
        while not self.closed.is_set():
            try:
                conn, _address = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


class Request(NamedTuple):
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # in the order sent, repeated names kept
    body: bytes


def read_request(reader: BinaryIO) -> Request | None:
    """The next request on a connection (its body by Content-Length), or None once the client
    has closed it."""
    line = reader.readline()
    if not line:
        return None
    method, target, version = line.decode().rstrip("\r\n").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while (header := reader.readline().decode().rstrip("\r\n")):
        name, _sep, value = header.partition(":")
        headers.append((name.strip(), value.strip()))
    length = int({name.lower(): value for name, value in headers}.get("content-length", "0"))
    return Request(method, target, version, headers, reader.read(length) if length else b"")


def pipe(source: socket.socket, sink: socket.socket, delay: float = 0.0, stop: threading.Event | None = None) -> None:
    """Copies what ``source`` sends to ``sink``, holding each chunk back ``delay`` seconds, until
    either socket ends or ``stop`` is set; then ends both, which also ends the copy the other way."""
    stop = stop or threading.Event()
    try:
        while not stop.is_set():
            data = source.recv(65536)
            if not data:
                break
            if delay and stop.wait(delay):
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
