"""Answers an instance gets wrong (issue 23): read by llhttp, a malformed one is a clean 502 naming the
instance, on a real misbehaving instance process, with uvloop and without; the host keeps serving."""

from __future__ import annotations

import os
import sys
import textwrap

from hosttools import body, wait_until
from test_host_auth import post
from test_host_supervision import instances

# An "interpreter" for the deployment: started as `python -m mlctl.runtime.server ... --unix-socket PATH`,
# it ignores the rest and serves that socket by hand: GET / is 200 (probes), POST /score answers with the
# chunked body named by MISBEHAVE.
FAKE_INSTANCE = textwrap.dedent(
    """
    import asyncio, os, sys
    ANSWERS = {
        "bad-chunk-size": b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
        + b"zz\\r\\nhello\\r\\n0\\r\\n\\r\\n",
        "huge-chunk-size": b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"
        + b"f" * 40 + b"\\r\\nhello\\r\\n0\\r\\n\\r\\n",
        "good-chunks": b'HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n7\\r\\n"hello"\\r\\n0\\r\\n\\r\\n',
    }
    async def handle(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if head.startswith(b"POST /score"):
                writer.write(ANSWERS[os.environ["MISBEHAVE"]])
            else:
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 7\\r\\n\\r\\nHealthy")
            await writer.drain()
    async def main():
        path = sys.argv[sys.argv.index("--unix-socket") + 1]
        server = await asyncio.start_unix_server(handle, path)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
    """
)


def fake_interpreter(tmp_path) -> str:
    path = tmp_path / "fake-python"
    path.write_text(f"#!{sys.executable}\n{FAKE_INSTANCE}")
    path.chmod(0o755)
    return str(path)


def test_a_malformed_chunked_answer_is_a_clean_502_and_the_host_keeps_serving(make_host, loop_mode, tmp_path):
    host = make_host()
    host.assert_loop(loop_mode)
    python = fake_interpreter(tmp_path)
    for name, misbehave in (("good", "good-chunks"), ("bad", "bad-chunk-size"), ("huge", "huge-chunk-size")):
        # (unconfined: its fake interpreter is a file in this test's /tmp folder; this test is about answers)
        spec = host.spec(name, env={"MISBEHAVE": misbehave}, unconfined=True)
        host.client.create_deployment({**spec, "python": python}, timeout=60)
    host.remember()
    host.client.set_traffic({"good": 100})
    for name in ("bad", "huge", "bad"):
        status, answer = post(host, host.auth(**{"azureml-model-deployment": name}), data=body())[:2]
        assert status == 502, (name, status, answer)
        assert f"instance 0 of deployment {name!r} failed while handling this request" in answer["message"], answer
        assert "bad answer" in answer["message"], answer
        # out of rotation while suspected, back once it answers a probe
        wait_until(lambda name=name: instances(host, name)[0]["ready"], 30, f"{name} ready again")
    status, answer = post(host, host.auth(), data=body())[:2]
    assert status == 200 and answer == "hello", (status, answer)
    log = host.log()
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]
    assert all(os.path.exists(f"/proc/{pid}") for pid in host.pids)
