"""The azure_blob backend's read without the SDK (mlctl/state/blobrest.py), against a real Azurite: the same bytes
and ETag as the SDK reads, with each credential variable; its errors; the credential parsing the SDK's own; and a
plan that never imports azure-storage-blob."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from test_azure_blob import env_with, project

from mlctl.errors import MlctlError
from mlctl.state.azureblob import AzureBlobBackend
from mlctl.state.blobrest import DEVSTORE_KEY, AccessError, access_from
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


def credentials(azurite, container) -> dict[str, dict]:
    from azurite_server import KEY

    return {
        "connection string": {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
        "account key": {"AZURE_STORAGE_KEY": KEY},
        "SAS": {"AZURE_STORAGE_SAS_TOKEN": sas_for(container, read=True)},
    }


def test_the_signed_read_gives_what_the_sdk_reads_with_each_credential(box):
    azurite, container = box
    name = "team/state of it.json"  # a folder and a space: the path is encoded and signed as sent
    settings = {"container": container, "name": name, "account_url": azurite.url}
    writer = AzureBlobBackend(settings, "x", environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})
    for environ in credentials(azurite, container).values():
        assert AzureBlobBackend(settings, "x", environ=environ).read().data is None  # not written yet
    write_state(writer, read_state(writer))
    sdk = azurite.service().get_blob_client(container, name).download_blob()
    expected = (sdk.readall(), sdk.properties.etag)
    for how, environ in credentials(azurite, container).items():
        reader = AzureBlobBackend(settings, "x", environ=environ)
        assert reader.access.signs, how
        got = reader.read()
        assert (got.data, got.etag) == expected, how
        assert "service" not in reader.__dict__, how  # the SDK's clients were not made for it
    # the ETag read without the SDK is the one its conditional write accepts
    state = read_state(AzureBlobBackend(settings, "x", environ=credentials(azurite, container)["account key"]))
    write_state(writer, state)
    assert read_state(writer).serial == 2


def test_the_signed_read_fails_as_the_sdk_read_did(box):
    azurite, container = box
    settings = {"container": container, "name": "s.json", "account_url": azurite.url}
    wrong_key = AzureBlobBackend(settings, "x", environ={"AZURE_STORAGE_KEY": "bm90IHRoZSBrZXk="})
    with pytest.raises(MlctlError, match="the credential from AZURE_STORAGE_KEY was refused"):
        wrong_key.read()
    other_container = AzureBlobBackend(
        {**settings, "container": "absent"}, "x", environ={"AZURE_STORAGE_SAS_TOKEN": sas_for(container, read=True)}
    )
    with pytest.raises(MlctlError, match="refused"):  # a SAS for another container: 403, not "no state"
        other_container.read()
    missing = AzureBlobBackend(
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
