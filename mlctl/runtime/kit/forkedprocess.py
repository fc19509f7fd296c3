"""An instance forked by a fork server (forkservers.py), seen by its launcher as a process: the pid, the exit code
the fork server reports for it (or, when that server is gone, the kernel's word through a pidfd that it ended, the
code then unknown) and wait(). It is not the endpoint host's child, so asyncio's child watcher cannot see it."""

from __future__ import annotations

import asyncio
import json
import os
import socket

UNKNOWN_EXIT = 255  # the fork server that knew the instance's exit code is gone
MAX_ANSWER = 1 << 16  # bytes of a fork server's answer line (a confined one runs the deployment's uid)


class ForkedProcess:
    """An instance forked by a fork server, seen as the launcher sees a process: pid, returncode, wait()."""

    def __init__(self, pid: int, conn: socket.socket, rest: bytes, lifeline: int, pidfd: int):
        self.pid = pid
        self.returncode: int | None = None
        self._conn, self._rest = conn, rest
        self._lifeline: int | None = lifeline
        self._pidfd: int | None = pidfd
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def wait(self) -> int:
        await asyncio.shield(self._watcher)
        assert self.returncode is not None
        return self.returncode

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            code = await exit_message(loop, self._conn, self._rest)
            if code is None and self._pidfd is not None:  # its fork server is gone: the kernel says when it ends
                ended = loop.create_future()

                def on_end() -> None:
                    if not ended.done():
                        ended.set_result(None)

                loop.add_reader(self._pidfd, on_end)
                try:
                    await ended
                finally:
                    loop.remove_reader(self._pidfd)
            self.returncode = UNKNOWN_EXIT if code is None else code
        finally:
            self._close()

    def _close(self) -> None:
        self._conn.close()
        for fd in (self._lifeline, self._pidfd):
            if fd is not None:
                os.close(fd)
        self._lifeline = self._pidfd = None


async def exit_message(loop, conn: socket.socket, rest: bytes) -> int | None:
    """The exit code the fork server sends for its child, None when its connection ends without one."""
    buffer = rest
    while True:
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            if "exit" in message:
                return int(message["exit"])
        try:
            data = await loop.sock_recv(conn, 4096)
        except OSError:
            return None
        if not data or len(buffer) > MAX_ANSWER:
            return None
        buffer += data
