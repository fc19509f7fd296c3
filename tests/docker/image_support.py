"""Helpers of the docker runtime's tests (fixtures are in conftest.py; this module is imported by name,
as e2e_support is, since every tests/ folder has a conftest module of its own)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "diabetes"


def example_copy(root: Path) -> Path:
    """A copy of examples/diabetes at `root` with a stand-in model file (enough to load and build
    its image; a test that scores trains the real model)."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".mlctl", "__pycache__", "model"))
    (root / "model").mkdir()
    (root / "model" / "model.pkl").write_bytes(b"stand-in")
    return root


class EngineProxy:
    """A unix-socket proxy in front of the engine's socket (its clients reach the engine through
    `address`); `cut()` closes it and every connection through it, as an engine that dies would."""

    def __init__(self, folder: Path, engine_socket: str):
        import socket
        import threading

        self.path, self.engine_socket = folder / "engine.sock", engine_socket
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(16)
        self.open: list = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"unix://{self.path}"

    def _accept(self):
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine_socket)
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        import socket

        self.server.close()
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
