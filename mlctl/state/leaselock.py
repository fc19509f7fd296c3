"""The state lock as a lease that expires: wait for it, record its holder, renew it while held, give it back.

`LeaseLock.lock` is the Backend's `lock` for a store whose lock is a lease (an Azure blob lease; an S3 object
with an expiry would do too), carried out through five primitives the backend provides, each one request:
`_create_lock()` (the object whose lease is the lock), `_acquire(lease_id) -> bool` (False: another holds it),
`_record(lease_id, holder)` (the holder's record, read back by `holder()`), `_renew(lease_id)`, `_release(lease_id)`
(best effort). While the lock is held a thread renews the lease every third of `lease_seconds`; a renewal that
fails marks the lock lost (`_lost`: the backend's next write refuses). A holder that dies frees the lock when its
lease expires.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Mapping

from mlctl.errors import Diagnostic, MlctlError
from mlctl.state.backend import BackendError, Holder
from mlctl.waiting import Timeout, wait_until

POLL_S = 1.0


class LeaseLock:
    lease_seconds: int
    where: str
    _lost: str | None

    def holder(self) -> Holder | None:
        raise NotImplementedError

    def _create_lock(self) -> None:
        raise NotImplementedError

    def _acquire(self, lease_id: str) -> bool:
        raise NotImplementedError

    def _record(self, lease_id: str, holder: Mapping[str, str]) -> None:
        raise NotImplementedError

    def _renew(self, lease_id: str) -> None:
        raise NotImplementedError

    def _release(self, lease_id: str) -> None:
        raise NotImplementedError

    @contextmanager
    def lock(self, operation: str, timeout: float = 0):
        self._create_lock()
        lease_id = str(uuid.uuid4())
        deadline, told = time.monotonic() + timeout, False
        last: list = [None]  # the holder seen at the last refused attempt

        def leased() -> bool:
            nonlocal told
            if self._acquire(lease_id):
                return True
            last[0] = self.holder()
            if not told and time.monotonic() < deadline:
                told = True
                sys.stderr.write(f"Waiting up to {timeout:g}s for the state lock held by {_shown(last[0])}...\n")
                sys.stderr.flush()
            return False

        try:
            wait_until(leased, timeout, "the state's lease is free", interval=POLL_S)
        except Timeout:
            held = last[0]
            waited = f" after waiting {timeout:g}s" if timeout else ""
            raise MlctlError(
                Diagnostic(
                    f"the state is locked by {_shown(held)}{waited}",
                    "Wait for it to finish, or pass --lock-timeout DURATION (e.g. 60s) to wait for it. A holder "
                    f"that died frees it within {self.lease_seconds}s (its lease expires); "
                    f"`mlctl state force-unlock {held.id if held else 'ID'}` breaks it at once.",
                    file=self.where,
                )
            ) from None
        me = Holder(
            lease_id,
            f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}",
            operation,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        stop = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(lease_id, stop), daemon=True, name="mlctl-lease")
        try:
            self._record(lease_id, {"id": me.id, "who": me.who, "operation": operation, "since": me.since})
            renewer.start()
            yield me
        finally:
            stop.set()
            if renewer.is_alive():
                renewer.join(timeout=30)
            self._release(lease_id)

    def _keep(self, lease_id: str, stop: threading.Event) -> None:
        """The renewal thread: renew the lease every third of its duration until `stop`; a renewal that fails
        marks the lock lost (the next write refuses)."""
        while not stop.wait(self.lease_seconds / 3):
            try:
                self._renew(lease_id)
            except BackendError as e:
                self._lost = f"its lease could not be renewed ({e.diagnostics[0].summary})"
                return


def _shown(held: Holder | None) -> str:
    return held.describe() if held else "another mlctl (its record is not written yet)"
