"""A bare proxy, for reference only: the cost of the hop itself, without the gateway's features.

httptools parses, a bearer key is compared, the request goes to one instance over mlctl's pooled
unix-socket client (`host/upstream.py`) and its answer comes back; no routing, request ids,
limits, timeouts, metrics, access log, mirror or 100-continue, and nothing is checked but the key.
Not for use: `gateway_bench.py --bare` measures it beside the endpoint host, so the figures say
how much of the gateway's cost is the hop and how much its features.

    python3 bench/gateway/bare_proxy.py SOCKET   (the key on stdin; prints the port it listens on)
"""

from __future__ import annotations

import asyncio
import hmac
import signal
import sys
from pathlib import Path

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mlctl.runtime.host.upstream import Pool  # noqa: E402


class BareConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, key: bytes):
        self.pool, self.key = pool, b"Bearer " + key
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.headers: list[bytes] = []
        self.auth = b""
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"authorization":
            self.auth = value
        elif lower not in (b"host", b"content-length", b"connection"):
            self.headers.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        headers, body, auth = b"".join(self.headers), b"".join(self.body), self.auth
        self.headers, self.body, self.auth = [], [], b""
        if not hmac.compare_digest(auth, self.key):
            self.transport.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
            return
        sent = self.pool.send("POST", "/score", headers, body)
        if sent is None:
            asyncio.ensure_future(self._connect_and_send(headers, body))
        else:
            sent[2].add_done_callback(self._answer)

    async def _connect_and_send(self, headers: bytes, body: bytes) -> None:
        _, _, answer = await self.pool.request("POST", "/score", headers, body)
        answer.add_done_callback(self._answer)

    def _answer(self, answer: asyncio.Future) -> None:
        if self.transport.is_closing():
            return
        if answer.exception() is not None:
            self.transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        status, reason, passed, data = answer.result()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n\r\n%s"
            % (status, reason.encode("latin-1"), passed, len(data), data)
        )


async def serve(socket_path: str, key: bytes) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pool = Pool(socket_path)
    server = await loop.create_server(lambda: BareConnection(pool, key), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await stop.wait()
    server.close()
    pool.close()


def main() -> None:
    key = sys.stdin.readline().strip().encode()
    try:
        import uvloop

        uvloop.run(serve(sys.argv[1], key))
    except ImportError:
        asyncio.run(serve(sys.argv[1], key))


if __name__ == "__main__":
    main()
