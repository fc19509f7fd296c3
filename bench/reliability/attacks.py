"""What the reliability report throws at a host: idle connections, unauthenticated huge bodies, and a
watcher of the host's resident memory. Each is bounded in count and time and stops by itself."""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
import time

BIG_BODY = 60 << 20  # the Content-Length every flood request announces: 60 MiB, no key


def open_idle(port: int, count: int, settle_s: float = 1.0) -> tuple[list, collections.Counter]:
    """Open `count` idle connections to 127.0.0.1:port (nothing sent); after `settle_s`, sort them:
    held (open, no answer), refused (an HTTP 503 and closed), closed (closed without an answer),
    failed (connect() failed). Returns (the open sockets, the counts); the caller closes the sockets."""
    socks, counts = [], collections.Counter()
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            counts["failed"] += 1
    time.sleep(settle_s)  # the host answers those past its connection limit
    for sock in socks:
        sock.setblocking(False)
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            counts["held"] += 1
            continue
        except OSError:
            data = b""
        counts["refused" if data.startswith(b"HTTP/1.1 503 ") else "closed"] += 1
    return socks, counts


async def _big_bodies(port: int, seconds: float, clients: int, statuses: collections.Counter, sent: list) -> None:
    head = (
        f"POST /score HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BIG_BODY}\r\n\r\n"
    ).encode()
    chunk = b"7" * (1 << 20)
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                statuses["connect failed"] += 1
                continue
            answer = asyncio.ensure_future(reader.readline())
            try:
                writer.write(head)
                pushed = 0
                while pushed < BIG_BODY and not answer.done() and time.monotonic() < stop_at:
                    writer.write(chunk)
                    await writer.drain()
                    pushed += len(chunk)
                    sent[0] += len(chunk)
            except OSError:
                pass  # the host answered and closed while the body was still coming
            try:
                line = await asyncio.wait_for(answer, 5)
                statuses[line.split()[1].decode() if line.startswith(b"HTTP/") else "closed unanswered"] += 1
            except ConnectionResetError:  # the host closed with body bytes unread: the RST can overtake its 401
                statuses["reset"] += 1
            except asyncio.TimeoutError:
                statuses["no answer in 5 s"] += 1
            except OSError as e:
                statuses[type(e).__name__] += 1
            finally:
                answer.cancel()
                writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))


class BigBodyFlood:
    """`clients` concurrent clients, each sending 60 MiB bodies without a key, one after the other, for
    `seconds`, in a thread of their own; `statuses` counts the host's answers, `sent_mib` what went out."""

    def __init__(self, port: int, seconds: float, clients: int):
        self.statuses: collections.Counter = collections.Counter()
        self._sent = [0]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(_big_bodies(port, seconds, clients, self.statuses, self._sent)), daemon=True
        )

    def __enter__(self) -> "BigBodyFlood":
        self._thread.start()
        time.sleep(0.3)  # the flood is under way before the measured load starts
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join()

    @property
    def sent_mib(self) -> float:
        return self._sent[0] / (1 << 20)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (VmRSS) or its peak (VmHWM) in MB, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssPeak:
    """Samples a process's VmRSS every 50 ms while in the `with` block; `peak` is the largest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return  # the process is gone: the report says so
            self._done.wait(0.05)

    def __enter__(self) -> "RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
