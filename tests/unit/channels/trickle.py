"""A platform that answers one byte at a time: only a total time bound can stop it."""

from __future__ import annotations

import socket
import threading


class TricklingServer:
    """A real HTTP server on 127.0.0.1 that answers one byte every ``pace_s`` seconds.

    Its answer is valid and would take ``len(ANSWER) * pace_s`` (about 20 s) to arrive:
    every single read gets a byte long before any per-read timeout, so only a
    total bound on the attempt can stop it.
    """

    BODY = b'{"errcode": 0, "errmsg": "ok, eventually"}'
    ANSWER = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            len(BODY),
            BODY,
        )
    )

    def __init__(self, pace_s: float = 0.2) -> None:
        self.pace_s = pace_s
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2.0)
            request = b""
            while b"\r\n\r\n" not in request:  # the headers (the tiny body comes with them)
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            self.requests += 1
            for byte in self.ANSWER:
                if self.stop.wait(self.pace_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the client hung up: what a real server sees too
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()
