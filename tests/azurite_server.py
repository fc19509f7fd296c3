"""A real Azurite (Microsoft's Azure Storage emulator, npm package `azurite`) for the tests of the azure_blob
state backend: installed at a pinned version into a project-local folder (never globally), listening on
127.0.0.1 with telemetry off, stopped by PID.

`.ci/run` installs it (`python tests/azurite_server.py install`); the fixture installs it when missing and npm is
there, and otherwise skips, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VERSION = "3.35.0"
FOLDER = Path(os.environ.get("MLCTL_AZURITE_DIR") or Path(__file__).resolve().parents[1] / ".ci-cache" / "azurite")
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; it opens nothing but the emulator)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def executable() -> Path:
    return FOLDER / "node_modules" / ".bin" / "azurite-blob"


def installed_version() -> str | None:
    package = FOLDER / "node_modules" / "azurite" / "package.json"
    try:
        import json

        return json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install() -> Path:
    """npm install azurite@VERSION into FOLDER (once); the path of its azurite-blob."""
    if installed_version() != VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: Azurite (the Azure Storage emulator) runs on Node.js")
        FOLDER.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(FOLDER),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"azurite@{VERSION}",
            ],
            check=True,
            timeout=600,
        )
    return executable()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Azurite:
    """One Azurite blob service on 127.0.0.1:port keeping its data in `location` (it survives stop/start); over
    HTTPS with `tls` = (certificate file, key file)."""

    def __init__(self, location: Path, port: int | None = None, tls: tuple[str, str] | None = None):
        self.location, self.port, self.tls = location, port or free_port(), tls
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"DefaultEndpointsProtocol={scheme};AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.url};"

    def start(self) -> "Azurite":
        self.location.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(executable()),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--silent",
                *(["--cert", self.tls[0], "--key", self.tls[1]] if self.tls else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.location / "azurite.err", "ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"azurite exited {self.proc.returncode}: {(self.location / 'azurite.err').read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("azurite did not listen within 60 s")

    def stop(self) -> None:
        """Stop it by its process group (node and nothing else of ours): SIGTERM, so it saves its data (a
        restart finds it), then SIGKILL after 20 s."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def started(location: Path, tls: tuple[str, str] | None = None) -> Azurite:
    """A real Azurite at `location`, installed first when missing; the test is skipped without npm, except in
    CI, where a missing Azurite fails."""
    import pytest

    try:
        install()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"Azurite cannot be installed: {e}")
        pytest.skip(f"Azurite cannot be installed: {e}")
    return Azurite(location, tls=tls).start()


if __name__ == "__main__" and sys.argv[1:] == ["install"]:
    print(f"azurite {VERSION}: {install()}")
