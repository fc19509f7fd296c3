"""The azure_blob backend's credentials, and its one read without the SDK: a signed `GET` of the state blob.

A plan reads the state once and writes nothing. Importing azure-storage-blob costs more than the 150 ms a
shared state may add to a plan (about 0.4 s of CPU with bytecode, 1.5 s without), so that read is one HTTP
request made here with the standard library: Shared Key (a connection string's AccountKey, or
AZURE_STORAGE_KEY) or a SAS (AZURE_STORAGE_SAS_TOKEN, or a connection string's SharedAccessSignature).
Writes, leases and listings stay with the official SDK (`azureblob.py`), and so does a read under
DefaultAzureCredential (a token credential needs azure-identity anyway).

`access_from` parses the credential variables as the SDK does (`parse_connection_str`): tests check that
both give the same account URL for each form of connection string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from email.utils import formatdate
from typing import Mapping
from urllib.parse import quote, urlparse

CREDENTIAL_VARIABLES = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY")
API_VERSION = "2025-01-05"
DEVSTORE_ACCOUNT = "devstoreaccount1"
DEVSTORE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
TIMEOUT_S = 10.0


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
        """Whether this module can make the request itself (else the SDK's token credential must)."""
        return bool(self.account_key or self.sas)


@dataclass(frozen=True)
class Response:
    status: int
    error_code: str | None
    etag: str | None
    body: bytes


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
    if "BLOBENDPOINT" in settings:
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


def get_blob(access: Access, container: str, blob: str, timeout: float = TIMEOUT_S) -> Response:
    """GET one blob (HTTP errors are Responses; OSError when the account does not answer)."""
    import urllib.error
    import urllib.request

    path = f"{urlparse(access.account_url).path.rstrip('/')}/{quote(container)}/{quote(blob)}"
    url = f"{access.account_url}/{quote(container)}/{quote(blob)}"
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
    if access.account_key:
        headers["Authorization"] = _shared_key("GET", access, path, headers)
    elif access.sas:
        url += "?" + access.sas
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, None, answer.headers.get("ETag"), answer.read())
    except urllib.error.HTTPError as e:
        with e:
            return Response(e.code, e.headers.get("x-ms-error-code"), None, e.read())


def _shared_key(verb: str, access: Access, path: str, headers: Mapping[str, str]) -> str:
    """Pure: the Shared Key Authorization header of a request without body or conditions (Azure Storage's
    "Authorize with Shared Key": twelve standard headers, then x-ms-* headers, then the resource)."""
    canonical_headers = "".join(
        f"{k.lower()}:{v.strip()}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-")
    )
    to_sign = verb + "\n" * 12 + canonical_headers + f"/{access.account_name}{path}"
    digest = hmac.new(base64.b64decode(access.account_key or ""), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {access.account_name}:{base64.b64encode(digest).decode()}"
