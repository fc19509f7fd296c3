"""The azure_blob backend with a key or a SAS: what plan and apply ask of the store, as signed requests.

SignedBlobBackend is AzureBlobBackend with the read, the conditional writes and the lease made through
mlctl.state.blobrest instead of the SDK, whose import is most of what the shared state added to an apply
(bench/README.md, "State backends"). The steps around them (retries, the wait for a held lock, its renewal
thread, the errors) are AzureBlobBackend's own. Listing and reading kept versions and force-unlock stay with the
SDK (they are not on a plan's or an apply's path), and so does everything under DefaultAzureCredential:
`azure_blob_backend` picks the class.
"""

from __future__ import annotations

import os
import ssl
from functools import cached_property
from typing import Any, Mapping

from mlctl.state.azureblob import AzureBlobBackend
from mlctl.errors import Diagnostic
from mlctl.state.backend import BackendError, Holder, Snapshot
from mlctl.state.blobrest import Client, Response


def azure_blob_backend(settings: Mapping[str, Any], default_name: str, environ: Mapping[str, str] | None = None):
    """The azure_blob backend of a `state:` block: SignedBlobBackend when a key or a SAS is set, else the SDK's."""
    plain = AzureBlobBackend(settings, default_name, os.environ if environ is None else environ)
    if not plain.access.signs:
        return plain
    return SignedBlobBackend(settings, default_name, os.environ if environ is None else environ)


class SignedBlobBackend(AzureBlobBackend):
    @cached_property
    def client(self) -> Client:
        return Client(self.access)

    def _ask(self, doing: str, verb: str, blob: str, **request) -> Response:
        """One signed request; BackendError when the account does not answer."""
        try:
            return self.client.request(verb, self.container_name, blob, **request)
        except ssl.SSLError as e:
            where = f"account {self.account_url}, container '{self.container_name}'"
            raise BackendError(
                Diagnostic(
                    f"cannot {doing} the state in Azure Blob Storage ({where}): the TLS connection failed "
                    f"({type(e).__name__}: {e.reason or e})",
                    "Check account_url, and that the account's certificate is trusted (the system's store, or "
                    "the bundle REQUESTS_CA_BUNDLE names); nothing was changed.",
                    file=self.where,
                )
            ) from None
        except OSError as e:
            raise self._failure(doing, "", None, False, True, e) from None

    def _refused(self, doing: str, got: Response):
        return self._failure(doing, got.error_code or "", got.status, False, False, got.message())

    def read(self) -> Snapshot:
        got = self._ask("read", "GET", self.name)
        if got.status == 200:
            return Snapshot(got.body, got.etag)
        if got.status == 404 and got.error_code != "ContainerNotFound":
            return Snapshot(None, None)
        raise self._refused("read", got)

    def _put_state(self, data: bytes, if_match: str | None) -> str:
        condition = {"If-Match": if_match} if if_match is not None else {"If-None-Match": "*"}
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/json", **condition}
        got = self._ask("write", "PUT", self.name, headers=headers, body=data)
        if got.status == 201:
            return got.etag or ""
        if got.status in (409, 412):
            if got.retried:  # an attempt that got no answer may have written it: then the blob holds `data`
                now = self.read()
                if now.data == data and now.etag:
                    return now.etag
            raise self._conflict()
        raise self._refused("write", got)

    def _put_copy(self, blob: str, data: bytes) -> None:
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/json"}
        got = self._ask("keep a copy of", "PUT", blob, headers=headers, body=data)
        if got.status != 201:
            raise self._refused("keep a copy of", got)

    # -- the lock: the lease of NAME.lock, its holder in the lock blob's metadata

    def holder(self) -> Holder | None:
        got = self._ask("read the lock of", "HEAD", self.lock_name)
        if got.status == 404 and got.error_code != "ContainerNotFound":
            return None
        if got.status != 200:
            raise self._refused("read the lock of", got)
        if got.headers.get("x-ms-lease-status") != "locked":
            return None
        meta = {k: got.headers.get(f"x-ms-meta-{k}", "?") for k in ("id", "who", "operation", "since")}
        return Holder(meta["id"], meta["who"], meta["operation"], meta["since"])

    def _create_lock(self) -> None:
        got = self._ask(
            "create the lock of", "PUT", self.lock_name, headers={"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}
        )
        if got.status != 201 and got.error_code not in ("BlobAlreadyExists", "LeaseIdMissing"):
            raise self._refused("create the lock of", got)

    def _lease_request(self, doing: str, action: str, lease_id: str, **more: str) -> Response:
        headers = {"x-ms-lease-action": action, **more}
        if action == "acquire":
            headers["x-ms-proposed-lease-id"] = lease_id
        else:
            headers["x-ms-lease-id"] = lease_id
        return self._ask(doing, "PUT", self.lock_name, query={"comp": "lease"}, headers=headers)

    def _acquire(self, lease_id: str) -> bool:
        got = self._lease_request("lock", "acquire", lease_id, **{"x-ms-lease-duration": str(self.lease_seconds)})
        if got.status in (200, 201):
            return True
        if got.error_code == "LeaseAlreadyPresent":
            return False
        raise self._refused("lock", got)

    def _record(self, lease_id: str, holder: Mapping[str, str]) -> None:
        # metadata values are HTTP header values: ASCII (a user or host name outside it is shown with '?')
        meta = {f"x-ms-meta-{k}": v.encode("ascii", "replace").decode() for k, v in holder.items()}
        got = self._ask(
            "record the lock holder of",
            "PUT",
            self.lock_name,
            query={"comp": "metadata"},
            headers={"x-ms-lease-id": lease_id, **meta},
        )
        if got.status != 200:
            raise self._refused("record the lock holder of", got)

    def _renew(self, lease_id: str) -> None:
        got = self._lease_request("renew the lock of", "renew", lease_id)
        if got.status != 200:
            raise self._refused("renew the lock of", got)

    def _release(self, lease_id: str) -> None:
        try:
            self._lease_request("unlock", "release", lease_id)
        except Exception:  # noqa: BLE001 - best effort: the lease expires by itself within lease_seconds
            pass
