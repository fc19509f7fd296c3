"""An http.client connection over a unix socket (the host's admin socket, a scoring server's socket).

Standard library only: code that runs inside a platform's replicas imports it too.
"""

from __future__ import annotations

import http.client
import socket


class UnixConnection(http.client.HTTPConnection):
    """HTTPConnection to the unix socket at `path`."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)
