"""The azure_blob backend without the SDK (mlctl/state/blobrest.py, signedblob.py) against a real Azurite, with each
credential variable (connection string, account key, SAS): the read gives the SDK's bytes and ETag; conditional
writes refuse a stale ETag; the lease is taken, recorded (the SDK reads the same holder), renewed past its 15 s and
freed when its holder is SIGKILLed; its errors; the credential parsing the SDK's own; and a plan and a locked write
that never import azure-storage-blob."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from test_azure_blob import env_with, project

from mlctl.errors import MlctlError
from mlctl.state.azureblob import AzureBlobBackend
from mlctl.state.signedblob import SignedBlobBackend, azure_blob_backend
from mlctl.state.blobaccess import DEVSTORE_KEY, AccessError, access_from
from mlctl.state.statefile import read_state, write_state


@pytest.fixture
def box(azurite):
    name = f"r{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    return azurite, name


def sas_for(container: str, **permissions) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from azurite_server import ACCOUNT, KEY

    return generate_container_sas(
        ACCOUNT,
        container,
        account_key=KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def credentials(azurite, container, **sas_permissions) -> dict[str, dict]:
    from azurite_server import KEY

    return {
        "connection string": {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
        "account key": {"AZURE_STORAGE_KEY": KEY},
        "SAS": {"AZURE_STORAGE_SAS_TOKEN": sas_for(container, **(sas_permissions or {"read": True}))},
    }


WRITER = {"read": True, "add": True, "create": True, "write": True, "delete": True, "list": True}


def test_the_signed_read_gives_what_the_sdk_reads_with_each_credential(box):
    azurite, container = box
    name = "team/state of it.json"  # a folder and a space: the path is encoded and signed as sent
    settings = {"container": container, "name": name, "account_url": azurite.url}
    writer = AzureBlobBackend(settings, "x", environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    for environ in credentials(azurite, container).values():
        assert azure_blob_backend(settings, "x", environ=environ).read().data is None  # not written yet
    write_state(writer, read_state(writer))
    sdk = azurite.service().get_blob_client(container, name).download_blob()
    expected = (sdk.readall(), sdk.properties.etag)
    for how, environ in credentials(azurite, container).items():
        reader = azure_blob_backend(settings, "x", environ=environ)
        assert isinstance(reader, SignedBlobBackend), how
        got = reader.read()
        assert (got.data, got.etag) == expected, how
        assert "service" not in reader.__dict__, how  # the SDK's clients were not made for it
    # the ETag read without the SDK is the one its conditional write accepts
    state = read_state(SignedBlobBackend(settings, "x", environ=credentials(azurite, container)["account key"]))
    write_state(writer, state)
    assert read_state(writer).serial == 2


def test_the_signed_read_fails_as_the_sdk_read_did(box):
    azurite, container = box
    settings = {"container": container, "name": "s.json", "account_url": azurite.url}
    wrong_key = SignedBlobBackend(settings, "x", environ={"AZURE_STORAGE_KEY": "bm90IHRoZSBrZXk="})
    with pytest.raises(MlctlError, match="the credential from AZURE_STORAGE_KEY was refused"):
        wrong_key.read()
    other_container = SignedBlobBackend(
        {**settings, "container": "absent"}, "x", environ={"AZURE_STORAGE_SAS_TOKEN": sas_for(container, read=True)}
    )
    with pytest.raises(MlctlError, match="refused"):  # a SAS for another container: 403, not "no state"
        other_container.read()
    missing = SignedBlobBackend(
        {**settings, "container": "absent"}, "x", environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    )
    with pytest.raises(MlctlError, match="the container 'absent' does not exist"):
        missing.read()


CONNECTION_STRINGS = [
    "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    "AccountName=acct;AccountKey=a2V5",
    "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn;",
    "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=abc",
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
    "UseDevelopmentStorage=true",
]


@pytest.mark.parametrize("text", CONNECTION_STRINGS)
def test_a_connection_string_names_the_account_the_sdk_names(text):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(text)
    access = access_from(None, {"AZURE_STORAGE_CONNECTION_STRING": text})
    assert access.account_url == service.url.split("?")[0].rstrip("/")
    assert access.account_name == service.account_name
    if "UseDevelopmentStorage" in text:
        assert access.account_key == DEVSTORE_KEY == service.credential.account_key
    elif "AccountKey" in text:
        assert access.account_key == service.credential.account_key
    else:
        assert access.sas == "sv=2021&sig=abc" and access.account_key is None


@pytest.mark.parametrize("text", [";", "AccountName", "Foo=bar", "BlobSecondaryEndpoint=https://x/"])
def test_a_connection_string_the_sdk_refuses_is_refused(text):
    from azure.storage.blob import BlobServiceClient

    with pytest.raises(ValueError):
        BlobServiceClient.from_connection_string(text)
    with pytest.raises(AccessError, match="AZURE_STORAGE_CONNECTION_STRING is not a storage connection string"):
        access_from(None, {"AZURE_STORAGE_CONNECTION_STRING": text})


PLAN_IMPORTS = textwrap.dedent("""
    import runpy, sys
    sys.argv = ["mlctl", "-C", sys.argv[1], "plan", "--refresh=false"]
    try:
        runpy.run_module("mlctl.cli", run_name="__main__")
    except SystemExit as e:
        print("exit", e.code, sorted(m for m in sys.modules if m.startswith("azure")))
""")


def test_a_plan_without_refresh_reads_the_shared_state_without_importing_the_sdk(box, tmp_path):
    azurite, container = box
    root = project(tmp_path / "p", container, account_url=azurite.url)
    env = env_with(AZURE_STORAGE_SAS_TOKEN=sas_for(container, read=True, list=True))
    ran = subprocess.run(
        [sys.executable, "-c", PLAN_IMPORTS, str(root)], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.stdout.strip().splitlines()[-1] == "exit 0 []", ran.stdout + ran.stderr
    assert "endpoint.shared" in ran.stdout


@pytest.mark.parametrize("how", ["connection string", "account key", "SAS"])
def test_signed_writes_are_conditional_and_kept_and_the_lease_is_the_sdks(box, how):
    azurite, container = box
    settings = {"container": container, "name": "team/s.json", "account_url": azurite.url, "lease_seconds": 15}
    signed = SignedBlobBackend(settings, "x", environ=credentials(azurite, container, **WRITER)[how])
    sdk = AzureBlobBackend(settings, "x", environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    first = write_state(signed, read_state(signed))  # the first write: only if there is no document yet
    stale, fresh = read_state(signed), read_state(signed)
    write_state(signed, fresh)
    with pytest.raises(MlctlError, match="the state changed since it was read"):
        write_state(signed, stale)  # a stale ETag: refused, nothing written
    assert read_state(sdk).serial == 2 and read_state(sdk).lineage == first.lineage
    assert [v.serial for v in sdk.versions()] == [1, 2]  # each write's copy, read back by the SDK
    assert read_state(signed).etag == read_state(sdk).etag
    other = SignedBlobBackend(settings, "x", environ=credentials(azurite, container, **WRITER)[how])
    with signed.lock("apply") as me:
        assert sdk.holder() == me == other.holder()  # the record the SDK reads, and the signed read of it
        with pytest.raises(MlctlError, match=f"the state is locked by .*lock ID {me.id}"):
            with sdk.lock("apply"):
                pass
        with pytest.raises(MlctlError, match=f"lock ID {me.id}"):
            with other.lock("apply"):
                pass
        write_state(signed, read_state(signed))
    assert sdk.holder() is None and signed.holder() is None  # released at once
    with sdk.lock("destroy") as them:  # the SDK's lock, seen and respected by the signed backend
        assert signed.holder() == them
        with pytest.raises(MlctlError, match=f"lock ID {them.id}"):
            with signed.lock("apply"):
                pass
    assert "service" not in signed.__dict__  # the SDK's clients were never made for the signed backend


HOLD = textwrap.dedent("""
    import sys
    from mlctl.state.signedblob import azure_blob_backend
    from mlctl.state.statefile import read_state, write_state
    b = azure_blob_backend({"container": sys.argv[1], "name": sys.argv[2], "account_url": sys.argv[3],
                            "lease_seconds": 15}, "x")
    with b.lock("apply") as me:
        write_state(b, read_state(b))
        print(me.id, sorted(m for m in sys.modules if m.startswith("azure")), flush=True)
        sys.stdin.readline()  # held (renewed) until the test says, or until SIGKILL
        write_state(b, read_state(b))
        print("wrote", flush=True)
        sys.stdin.readline()
""")


def test_a_signed_lease_is_renewed_past_its_15s_and_a_sigkilled_holder_frees_it_at_expiry(box, tmp_path):
    """Per credential variable, two holders side by side (one wait of ~20 s for all six): one is SIGKILLed as soon
    as it holds the lock, and its lease frees the lock when it expires; the other holds its lock past the 15 s
    lease, which only renewals keep, and still writes."""
    azurite, container = box
    envs = credentials(azurite, container, **WRITER)
    procs: dict[tuple[str, str], subprocess.Popen] = {}

    def settings(how: str, role: str) -> dict:
        name = f"{how.replace(' ', '-')}-{role}.json"
        return {"container": container, "name": name, "account_url": azurite.url, "lease_seconds": 15}

    sdk_environ = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
    try:
        for how, environ in envs.items():
            for role in ("kept", "killed"):
                procs[how, role] = subprocess.Popen(
                    [sys.executable, "-c", HOLD, container, settings(how, role)["name"], azurite.url],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env_with(**environ),
                )
        took = {}
        for key, proc in procs.items():
            lease_id, modules = proc.stdout.readline().split(" ", 1)
            assert modules.strip() == "[]", (key, modules)  # lock, read, write: no azure package imported
            took[key] = lease_id
        since = time.monotonic()  # every lease was taken before this
        sdk = {key: AzureBlobBackend(settings(*key), "x", environ=sdk_environ) for key in procs}
        for how in envs:
            procs[how, "killed"].send_signal(signal.SIGKILL)
            procs[how, "killed"].wait(timeout=30)
        assert all(sdk[how, "killed"].holder().id == took[how, "killed"] for how in envs)  # the lease outlives it
        for how in envs:  # ...until it expires, within its 15 s: then the next one takes the lock
            with SignedBlobBackend(settings(how, "killed"), "x", environ=envs[how]).lock("apply", timeout=60) as me:
                assert me.id != took[how, "killed"] and sdk[how, "killed"].holder() == me, how
        time.sleep(max(0.0, 20 - (time.monotonic() - since)))  # past the 15 s lease: only renewals keep it
        for how in envs:
            key, proc = (how, "kept"), procs[how, "kept"]
            held = sdk[key].holder()
            assert held is not None and held.id == took[key] and f"pid {proc.pid}" in held.who, how
            with pytest.raises(MlctlError, match=f"lock ID {took[key]}"):
                with sdk[key].lock("apply"):
                    pass
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "wrote", how  # its lease still held: its write goes through
            assert read_state(sdk[key]).serial == 2, how
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class _Forwarding:
    """A minimal forward HTTP proxy on 127.0.0.1 (absolute-URI requests, as urllib sends through http_proxy):
    it passes each request on to its target and counts them."""

    def __init__(self):
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(target.netloc, timeout=10)
                path = target.path + (f"?{target.query}" if target.query else "")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "proxy-connection")}
                upstream.request(self.command, path, body=body or None, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                seen.append((self.command, path))
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_signed_requests_go_through_the_proxy_the_environment_names(box, monkeypatch):
    azurite, container = box
    proxy = _Forwarding()
    try:
        try:  # urlopen's shared opener made before the variable is set (as by an earlier test or library call)
            urllib.request.urlopen(azurite.url, timeout=30).close()
        except urllib.error.HTTPError:
            pass
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        settings = {"container": container, "name": "p.json", "account_url": azurite.url, "lease_seconds": 15}
        for how, environ in credentials(azurite, container, **WRITER).items():
            b = SignedBlobBackend({**settings, "name": f"{how.replace(' ', '-')}.json"}, "x", environ=environ)
            with b.lock("apply") as me:
                state = write_state(b, read_state(b))
                assert b.holder() == me
            assert read_state(b).serial == state.serial == 1, how
        verbs = {verb for verb, _ in proxy.seen}
        assert verbs == {"GET", "PUT", "HEAD"} and len(proxy.seen) >= 3 * 6  # every request went through it
    finally:
        proxy.close()


def test_signed_requests_over_tls_keep_one_connection_and_check_the_certificate(tmp_path, monkeypatch):
    from azurite_server import started

    from mlctl.selfsigned import ensure_certificate

    issued = ensure_certificate(tmp_path / "ca", "azurite", ["127.0.0.1", "localhost"])
    azurite = started(tmp_path / "azurite", tls=(issued.certificate, issued.key))
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", issued.ca)  # the SDK's transport and the signed requests alike
        azurite.service().create_container("tls")
        settings = {"container": "tls", "name": "s.json", "lease_seconds": 15}
        environ = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        b = SignedBlobBackend(settings, "x", environ=environ)
        assert b.account_url.startswith("https://")
        state = write_state(b, read_state(b))
        connection = b.client._local.connection
        with b.lock("apply"):
            write_state(b, read_state(b))
        assert b.client._local.connection is connection  # every request since on one TLS connection
        assert type(connection).__name__ == "HTTPSConnection"
        sdk = AzureBlobBackend(settings, "x", environ=environ)
        assert (read_state(sdk).lineage, read_state(sdk).serial) == (state.lineage, 2)
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the project's CA is in no store: refused at once, not retried
        untrusting = SignedBlobBackend(settings, "x", environ=environ)
        with pytest.raises(MlctlError, match="the TLS connection failed .*CERTIFICATE_VERIFY_FAILED"):
            untrusting.read()
    finally:
        azurite.stop()


def test_a_connection_string_pins_the_account_a_project_file_cannot_redirect_the_sas():
    """The pull-request recipe (examples/ci/plan-comment.yml) passes its read-only SAS as a connection string with
    the account's endpoint: a project file naming another account_url is refused before any request."""
    pinned = "BlobEndpoint=https://team.blob.core.windows.net;SharedAccessSignature=sv=2021&sp=rl&sig=abc"
    environ = {"AZURE_STORAGE_CONNECTION_STRING": pinned}
    assert access_from("https://team.blob.core.windows.net/", environ).sas == "sv=2021&sp=rl&sig=abc"
    with pytest.raises(MlctlError, match="account_url is https://evil.example.net, but AZURE_STORAGE_CONNECTION"):
        azure_blob_backend({"container": "state", "account_url": "https://evil.example.net"}, "x", environ=environ)
