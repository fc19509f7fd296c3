"""The official SDK (azure-storage-blob, azure-identity) for the azure_blob backend: imported on first use, its
client made with the credential and the retry policy mlctl uses (twice, 3 s of waiting in all, as mlctl.state.blobrest).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from mlctl.errors import Diagnostic, MlctlError
from mlctl.state.blobaccess import CREDENTIAL_VARIABLES, Access


def sdk():
    # mlctl uses the synchronous client only. When aiohttp is installed (mlctl's server needs it) the SDK
    # imports azure-core's aiohttp transport merely to recognise it, which more than doubles its import
    # time: that one module is marked absent, so the SDK's `except ImportError` path is taken.
    sys.modules.setdefault("azure.core.pipeline.transport._aiohttp", None)  # type: ignore[arg-type]
    # The SDK and azure-identity log their failures as warnings (DefaultAzureCredential: a page per attempt);
    # without a handler Python's last resort prints them. mlctl's own error says what failed, once.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    try:
        import azure.storage.blob as blob
    except ImportError:
        raise MlctlError(
            Diagnostic(
                "the azure_blob state backend needs the azure-storage-blob and azure-identity packages",
                "Install them with `pip install 'mlctl[azure]'`.",
            )
        ) from None
    return blob


def service(access: Access):
    """The SDK's BlobServiceClient for an Access (its credential, its retry policy)."""
    blob = sdk()
    options: dict[str, Any] = {
        # twice, 1.5 s apart: 3 s of waiting in all, as blobrest's 1 s then 2 s (the SDK's ExponentialRetry with
        # initial_backoff=1 waits 3 s then 5 s)
        "retry_policy": blob.LinearRetry(backoff=1.5, retry_total=2, random_jitter_range=0),
        "connection_timeout": 10,
        "read_timeout": 30,
    }
    if access.connection_string:
        return blob.BlobServiceClient.from_connection_string(access.connection_string, **options)
    if access.sas:
        return blob.BlobServiceClient(access.account_url, credential=access.sas, **options)
    if access.account_key:
        credential = {"account_name": access.account_name, "account_key": access.account_key}
        return blob.BlobServiceClient(access.account_url, credential=credential, **options)
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise _sdk_missing() from None
    return blob.BlobServiceClient(access.account_url, credential=DefaultAzureCredential(), **options)


def json_settings():
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")


def _sdk_missing() -> MlctlError:
    return MlctlError(
        Diagnostic(
            "the azure_blob state backend needs the azure-identity package for DefaultAzureCredential",
            "Install it with `pip install 'mlctl[azure]'`, or set one of " + ", ".join(CREDENTIAL_VARIABLES) + ".",
        )
    )
