"""The bare-loop baseline: a minimal aiohttp app calling the benchmark's run() on its event loop.

One process, uvloop and orjson when installed, no access log, no request ids, no worker thread, no
timeout: what the scoring server's own stack (aiohttp on one loop) can do at most with this run().
    python bench/server/bare.py --entry-script score.py --model-dir DIR --port N
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os

from aiohttp import web

try:
    import orjson

    def dumps(value) -> bytes:  # type: ignore[no-untyped-def]
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - the bench installs orjson with mlctl's [fast] extra
    import json

    def dumps(value) -> bytes:  # type: ignore[no-untyped-def]
        return json.dumps(value).encode()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--entry-script", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    os.environ["AZUREML_MODEL_DIR"] = args.model_dir
    spec = importlib.util.spec_from_file_location("entry_module", args.entry_script)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.init()
    run = script.run

    async def score(request: web.Request) -> web.Response:
        return web.Response(body=dumps(run(await request.text())), content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    app = web.Application()
    app.router.add_post("/score", score)
    app.router.add_get("/", health)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
