"""The azure_blob backend's credentials: which account, and how to sign for it, from the environment only.

Credentials are read from the variables Azure's own tools read, in this order: AZURE_STORAGE_CONNECTION_STRING,
AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_KEY (with AZURE_STORAGE_ACCOUNT or the account_url's account); with
none of them, DefaultAzureCredential (azure-identity, through the SDK). `access_from` parses them as
azure-storage-blob does (`parse_connection_str`): tests check that both give the same account for each form of
connection string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlparse

CREDENTIAL_VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY")
DEVSTORE_ACCOUNT = "devstoreaccount1"
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AccessError(ValueError):
    """A credential variable or account_url that cannot name an account (the message says which)."""


@dataclass(frozen=True)
class Access:
    """Where the account is and how to sign for it. `variable` names where the credential came from; with
    neither a key nor a SAS it is DefaultAzureCredential's (the SDK's alone)."""

    account_url: str  # scheme://host[:port][/ACCOUNT for an emulator], no query, no trailing slash
    variable: str
    account_name: str | None = None
    account_key: str | None = None
    sas: str | None = None
    connection_string: str | None = None

    @property
    def signs(self) -> bool:
        """Whether mlctl.state.blobrest can sign requests itself (else the SDK with a token credential must)."""
        return bool(self.account_key or self.sas)


def access_from(account_url: str | None, environ: Mapping[str, str]) -> Access:
    """Pure: the Access the first credential variable set gives (CREDENTIAL_VARIABLES, in order). AccessError
    for a malformed connection string, one for another account than account_url, or no account at all."""
    variable = "AZURE_STORAGE_CONNECTION_STRING"
    if environ.get(variable):
        access = _from_connection_string(environ[variable])
        if account_url and access.account_url != account_url.rstrip("/"):
            raise AccessError(
                f"account_url is {account_url}, but {variable} is for {access.account_url}",
                "Remove account_url from the state: block, or set the connection string of that account.",
            )
        return access
    if not account_url:
        raise AccessError(
            "the azure_blob state backend needs account_url, or AZURE_STORAGE_CONNECTION_STRING to give it",
            "Add 'account_url: https://ACCOUNT.blob.core.windows.net' to the state: block.",
        )
    url = account_url.split("?")[0].rstrip("/")
    if environ.get("AZURE_STORAGE_SAS_TOKEN"):
        return Access(url, "AZURE_STORAGE_SAS_TOKEN", sas=environ["AZURE_STORAGE_SAS_TOKEN"].lstrip("?"))
    if environ.get("AZURE_STORAGE_KEY"):
        name = environ.get("AZURE_STORAGE_ACCOUNT") or account_name(url)
        return Access(url, "AZURE_STORAGE_KEY", account_name=name, account_key=environ["AZURE_STORAGE_KEY"])
    return Access(url, "DefaultAzureCredential (none of " + ", ".join(CREDENTIAL_VARIABLES) + " is set)")


def account_name(account_url: str) -> str:
    """Pure: the account name of a blob endpoint URL: ACCOUNT.blob.core.windows.net, or the first path
    segment of an emulator's http://127.0.0.1:10000/ACCOUNT."""
    url = urlparse(account_url)
    segment = url.path.strip("/").split("/")[0]
    return segment or (url.hostname or "").split(".")[0]


def _from_connection_string(text: str) -> Access:
    """Pure: the Access of a connection string, read as azure-storage-blob's parse_connection_str reads it."""
    pairs = [item.split("=", 1) for item in text.rstrip(";").split(";")]
    malformed = (
        "AZURE_STORAGE_CONNECTION_STRING is not a storage connection string",
        "Set it to the account's connection string (Azure portal: Storage account > Access keys).",
    )
    if any(len(pair) != 2 for pair in pairs):
        raise AccessError(f"{malformed[0]} (it is blank or malformed)", malformed[1])
    settings = {key.upper(): value for key, value in pairs}
    variable = "AZURE_STORAGE_CONNECTION_STRING"
    if settings.get("USEDEVELOPMENTSTORAGE") == "true":
        url = f"http://127.0.0.1:10000/{DEVSTORE_ACCOUNT}"
        return Access(url, variable, DEVSTORE_ACCOUNT, DEVSTORE_KEY, connection_string=text)
    name, key, sas = settings.get("ACCOUNTNAME"), settings.get("ACCOUNTKEY"), settings.get("SHAREDACCESSSIGNATURE")
    if settings.get("BLOBENDPOINT"):  # blank (an unset CI variable): no endpoint
        url = settings["BLOBENDPOINT"]
    elif "BLOBSECONDARYENDPOINT" in settings:
        raise AccessError(f"{malformed[0]} (it names only a secondary endpoint)", malformed[1])
    elif name:
        protocol = settings.get("DEFAULTENDPOINTSPROTOCOL", "https")
        url = f"{protocol}://{name}.blob.{settings.get('ENDPOINTSUFFIX', 'core.windows.net')}"
    else:
        raise AccessError(f"{malformed[0]} (it names no account or endpoint)", malformed[1])
    url = url.split("?")[0].rstrip("/")
    if not (name and key):
        name, key = None, None
    return Access(url, variable, name or account_name(url), key, sas if key is None else None, text)
