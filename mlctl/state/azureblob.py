"""The azure_blob state backend: the state as a blob in Azure Storage, locked with a blob lease.

Layout in the container: NAME (the state document), NAME.lock (an empty blob whose lease is the lock;
its metadata records the holder: who, operation, since, id = the lease ID) and NAME.versions/SERIAL.json
(a copy of every document written: `mlctl state versions`, `state pull --serial N`). Every write of NAME is
conditional on the ETag last read (If-Match; If-None-Match: * for the first), so two writers never
overwrite each other, even without the lock. While a lock is held a thread renews its lease every third
of its duration; a holder that dies blocks others until the lease expires (`lease_seconds`, 15-60).

Credentials come from the environment only (blobaccess.CREDENTIAL_VARIABLES, in that order), else
DefaultAzureCredential (azure-identity; not exercised by the tests, which run against Azurite).

This class makes every request through the official SDK (azure-storage-blob), imported on first use. With a key or
a SAS, `azure_blob_backend` gives its subclass mlctl.state.signedblob.SignedBlobBackend instead, which makes what
plan and apply ask (the read, the lease, the conditional writes) as signed requests without the SDK; both carry out
the same steps (`write`, `lock`), each through its own primitives (`_put_state`, `_acquire`, ...).
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import Any, Mapping

from mlctl.errors import Diagnostic, MlctlError
from mlctl.state.blobaccess import AccessError, access_from
from mlctl.state.blobsdk import json_settings, sdk, service
from mlctl.state.leaselock import LeaseLock
from mlctl.state.backend import BackendError, Holder, Snapshot, Version, WriteConflict, not_kept


class AzureBlobBackend(LeaseLock):
    def __init__(self, settings: Mapping[str, Any], default_name: str, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.container_name = settings["container"]
        self.name = settings.get("name") or default_name
        self.lease_seconds = int(settings.get("lease_seconds", 30))
        try:
            self.access = access_from(settings.get("account_url"), environ)
        except AccessError as e:
            raise _bad_setting(*e.args) from None
        self.variable = self.access.variable
        self.account_url = self.access.account_url
        self.where = f"{self.account_url}/{self.container_name}/{self.name}"
        self.config = {
            "backend": "azure_blob",
            "account_url": self.account_url,
            "container": self.container_name,
            "name": self.name,
        }
        self._lost: str | None = None  # why the held lease was lost, if it was

    # The SDK's clients are made on first use: a plan's one read does without them (blobrest.py).
    @cached_property
    def service(self):
        try:
            return service(self.access)
        except ValueError as e:  # a connection string the SDK reads otherwise than access_from
            if self.access.connection_string:
                raise _bad_setting(
                    f"AZURE_STORAGE_CONNECTION_STRING is not a storage connection string ({e})",
                    "Set it to the account's connection string (Azure portal: Storage account > Access keys).",
                ) from None
            raise _bad_setting(  # e.g. a token credential with an http:// account_url
                f"cannot use {self.variable} with account_url {self.account_url} ({e})",
                "DefaultAzureCredential needs an https:// account_url; for an emulator or another http endpoint set "
                "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY.",
            ) from None

    @cached_property
    def container(self):
        return self.service.get_container_client(self.container_name)

    @cached_property
    def blob(self):
        return self.container.get_blob_client(self.name)

    # -- errors ---------------------------------------------------------------------------------

    def _failed(self, doing: str, e: Exception) -> BackendError:
        """The error for a request the SDK failed: what, where, which credential, what to do."""
        from azure.core import exceptions as x

        code = getattr(e, "error_code", None) or ""
        code = getattr(code, "value", code)
        refused = isinstance(e, x.ClientAuthenticationError)
        silent = isinstance(e, (x.ServiceRequestError, x.ServiceResponseError))
        return self._failure(doing, code, getattr(e, "status_code", None), refused, silent, e)

    def _failure(
        self, doing: str, code: str, status: int | None, refused: bool, silent: bool, e: Exception | str
    ) -> BackendError:
        where = f"account {self.account_url}, container '{self.container_name}', credential from {self.variable}"
        cred = f"the credential from {self.variable}"
        if code == "ContainerNotFound":
            why, todo = (
                f"the container '{self.container_name}' does not exist",
                ("Create it (`az storage container create --name NAME`) or fix 'container' in the state: block."),
            )
        elif refused or status in (401, 403):
            why = f"{cred} was refused ({code or status or _first_line(e)})"
            if self.access.signs:
                todo = f"Check {self.variable}: it must be valid for this account and allow this operation"
                todo += " (a read-only SAS can plan with --refresh=false, not lock or write)."
            else:
                todo = (
                    "Sign in for DefaultAzureCredential (`az login`, a managed identity, or AZURE_CLIENT_ID, "
                    "AZURE_TENANT_ID and AZURE_CLIENT_SECRET) with a role that may read and write blobs, or set "
                    "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_KEY."
                )
        elif silent:
            kind = type(e).__name__ if isinstance(e, Exception) else "no answer"
            why = f"the storage account did not answer ({kind}: {_first_line(e)})"
            todo = "Check the network and account_url; nothing was changed."
        else:
            why = f"{code or status or type(e).__name__}: {_first_line(e)}"
            todo = "Nothing was changed by this request."
        return BackendError(
            Diagnostic(f"cannot {doing} the state in Azure Blob Storage ({where}): {why}", todo, file=self.where)
        )

    # -- read and write ---------------------------------------------------------------------------

    def read(self) -> Snapshot:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            downloaded = self.blob.download_blob()
            return Snapshot(downloaded.readall(), downloaded.properties.etag)
        except ResourceNotFoundError as e:
            if getattr(e, "error_code", None) == "ContainerNotFound":
                raise self._failed("read", e) from None
            return Snapshot(None, None)
        except AzureError as e:
            raise self._failed("read", e) from None

    def write(self, data: bytes, if_match: str | None, serial: int) -> str:
        """The conditional write of the document, then its kept copy (both before returning: a copy that failed is
        an error, never lost silently)."""
        if self._lost:
            raise BackendError(Diagnostic(f"the state lock was lost: {self._lost}", file=self.where))
        etag = self._put_state(data, if_match)
        self._put_copy(_version_name(self.name, serial), data)
        return etag

    def _put_state(self, data: bytes, if_match: str | None) -> str:
        """Replace the document if its ETag is still `if_match` (None: create it if there is none); its new
        ETag. WriteConflict otherwise, BackendError when the store fails."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError

        conditions: dict = {"overwrite": False}
        if if_match is not None:
            conditions = {"overwrite": True, "etag": if_match, "match_condition": MatchConditions.IfNotModified}
        try:
            written = self.blob.upload_blob(data, content_settings=json_settings(), **conditions)
        except (ResourceExistsError, ResourceModifiedError) as e:
            if getattr(e, "error_code", None) == "ContainerNotFound":
                raise self._failed("write", e) from None
            raise self._conflict() from None
        except AzureError as e:
            raise self._failed("write", e) from None
        return written["etag"]

    def _conflict(self) -> WriteConflict:
        return WriteConflict(Diagnostic("the state blob changed since it was read", file=self.where))

    def _put_copy(self, blob: str, data: bytes) -> None:
        from azure.core.exceptions import AzureError

        try:
            self.container.upload_blob(blob, data, overwrite=True, content_settings=json_settings())
        except AzureError as e:
            raise self._failed("keep a copy of", e) from None

    def versions(self) -> list[Version]:
        from azure.core.exceptions import AzureError

        prefix = self.name + ".versions/"
        try:
            found = [
                Version(int(b.name[len(prefix) : -len(".json")]), b.last_modified.isoformat(timespec="seconds"), b.size)
                for b in self.container.list_blobs(name_starts_with=prefix)
                if b.name.endswith(".json") and b.name[len(prefix) : -len(".json")].isdigit()
            ]
        except AzureError as e:
            raise self._failed("list the versions of", e) from None
        return sorted(found, key=lambda v: v.serial)

    def read_version(self, serial: int) -> bytes:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return self.container.download_blob(_version_name(self.name, serial)).readall()
        except ResourceNotFoundError:
            raise not_kept(self.where, serial, self.versions()) from None
        except AzureError as e:
            raise self._failed("read a version of", e) from None

    # -- the lock -----------------------------------------------------------------------------------

    @property
    def _lock_blob(self):
        return self.container.get_blob_client(self.lock_name)

    @property
    def lock_name(self) -> str:
        return self.name + ".lock"

    def holder(self) -> Holder | None:
        """Who holds the lock now (None when nobody does)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            props = self._lock_blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        except AzureError as e:
            raise self._failed("read the lock of", e) from None
        if props.lease.status != "locked":
            return None
        m = props.metadata or {}
        return Holder(m.get("id", "?"), m.get("who", "?"), m.get("operation", "?"), m.get("since", "?"))

    # the lock's primitives, each a request (BackendError when the store fails)

    def _create_lock(self) -> None:
        """Make the empty lock blob unless it is there."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            self._lock_blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError as e:
            if getattr(e, "error_code", None) not in ("BlobAlreadyExists", "LeaseIdMissing"):
                raise self._failed("create the lock of", e) from None
        except AzureError as e:
            raise self._failed("create the lock of", e) from None

    def _lease(self, lease_id: str | None = None):
        return sdk().BlobLeaseClient(self._lock_blob, lease_id=lease_id)

    def _acquire(self, lease_id: str) -> bool:
        """Take the lock blob's lease with ID `lease_id` for lease_seconds; False when another holds it."""
        from azure.core.exceptions import AzureError, HttpResponseError

        try:
            self._lease(lease_id).acquire(lease_duration=self.lease_seconds)
            return True
        except HttpResponseError as e:
            if getattr(e, "error_code", None) != "LeaseAlreadyPresent":
                raise self._failed("lock", e) from None
        except AzureError as e:
            raise self._failed("lock", e) from None
        return False

    def _record(self, lease_id: str, holder: Mapping[str, str]) -> None:
        """Write the holder's record as the lock blob's metadata (under the lease)."""
        from azure.core.exceptions import AzureError

        try:
            self._lock_blob.set_blob_metadata(dict(holder), lease=self._lease(lease_id))
        except AzureError as e:
            raise self._failed("record the lock holder of", e) from None

    def _renew(self, lease_id: str) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._lease(lease_id).renew()
        except AzureError as e:
            raise self._failed("renew the lock of", e) from None

    def _release(self, lease_id: str) -> None:
        """Give the lease back (best effort: it expires by itself within lease_seconds)."""
        from azure.core.exceptions import AzureError

        try:
            self._lease(lease_id).release()
        except AzureError:
            pass

    def unlock(self, lock_id: str) -> Holder:
        from azure.core.exceptions import AzureError

        held = self.holder()
        if held is None:
            raise MlctlError(Diagnostic("the state is not locked; nothing to unlock", file=self.where))
        if held.id != lock_id:
            raise MlctlError(
                Diagnostic(
                    f"lock ID {lock_id} is not the holder's: the state is locked by {held.describe()}",
                    "Give the ID the lock error printed (nothing was changed).",
                    file=self.where,
                )
            )
        try:
            self._lease().break_lease(lease_break_period=0)
        except AzureError as e:
            raise self._failed("unlock", e) from None
        return held


SECRET_IN_TEXT = re.compile(r"(?i)\b(sig|AccountKey|SharedAccessSignature)=[^&;\s]+")


def _first_line(e: Exception | str) -> str:
    """Pure: the first line of an SDK error, at most 200 characters, a SAS signature or key in it masked."""
    text = (str(e).splitlines() or [""])[0][:200]
    return SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)}=***", text)


def _version_name(name: str, serial: int) -> str:
    return f"{name}.versions/{serial:010d}.json"


def _bad_setting(summary: str, detail: str) -> MlctlError:
    return MlctlError(Diagnostic(summary, detail, field="state"))
