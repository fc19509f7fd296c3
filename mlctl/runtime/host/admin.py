"""The admin API on a mode-0600 unix socket (HTTP/JSON): the orders the runtime gives the host.

GET /status · POST /deployments/{name} (create) · POST /deployments/{name}/roll · POST /deployments/{name}/scale
· POST /deployments/{name}/revive · PUT /deployments/{name}/scaling (each ?timeout=S) · DELETE /deployments/{name}
· PUT /autoscale/peers · PUT /traffic · PUT /auth · POST /keys/reload · POST /tls/reload · POST /shutdown. Each is
one explicit order.
Errors: {"message", "kind", "log_tail"}.
"""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import web

from .endpoint import Endpoint, OrderRefused
from .listen import ListenSettings
from .tls import Tls, TlsError

ENDPOINT = web.AppKey("endpoint", Endpoint)
PORT = web.AppKey("port", int)
STOP = web.AppKey("stop", asyncio.Event)
LISTEN = web.AppKey("listen", ListenSettings)
TLS = web.AppKey("tls", object)  # a tls.Tls, or None without TLS


async def _body(request: web.Request) -> dict:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OrderRefused(400, "request body must be JSON") from None
    if not isinstance(data, dict):
        raise OrderRefused(400, "request body must be a JSON object")
    return data


def _timeout(request: web.Request) -> float:
    try:
        return float(request.query.get("timeout", "120"))
    except ValueError:
        raise OrderRefused(400, "timeout must be a number of seconds") from None


@web.middleware
async def refusals(request: web.Request, handler):
    """Orders run shielded (a client that hangs up does not leave half a change) and refusals become JSON."""
    try:
        return await asyncio.shield(handler(request))
    except OrderRefused as e:
        return web.json_response({"message": str(e), "kind": e.kind, "log_tail": e.log_tail}, status=e.status)


async def status(request: web.Request) -> web.Response:
    answer = request.app[ENDPOINT].status(request.app[PORT], os.getpid())
    tls = request.app[TLS]
    listen = {**request.app[LISTEN].public(), "tls": tls.status() if tls else None}
    return web.json_response({**answer, "listen": listen})


async def _spec(request: web.Request) -> dict:
    spec = await _body(request)
    if spec.get("name") != request.match_info["name"]:
        raise OrderRefused(400, f"spec name {spec.get('name')!r} does not match the URL")
    return spec


async def create_deployment(request: web.Request) -> web.Response:
    spec = await _spec(request)
    return web.json_response(await request.app[ENDPOINT].create_deployment(spec, _timeout(request)))


async def roll_deployment(request: web.Request) -> web.Response:
    spec = await _spec(request)
    return web.json_response(await request.app[ENDPOINT].roll_deployment(spec, _timeout(request)))


async def scale_deployment(request: web.Request) -> web.Response:
    body = await _body(request)
    ep = request.app[ENDPOINT]
    return web.json_response(
        await ep.scale_deployment(request.match_info["name"], body.get("instance_count"), _timeout(request))
    )


async def set_scaling(request: web.Request) -> web.Response:
    body = await _body(request)
    ep = request.app[ENDPOINT]
    name, settings, count = request.match_info["name"], body.get("scale_settings"), body.get("instance_count")
    return web.json_response(await ep.set_scaling(name, settings, count, _timeout(request)))


async def share_load(request: web.Request) -> web.Response:
    """The endpoint's other in-cluster hosts, heard by each autoscaled deployment ({name: figures}, ray's
    loadshare.py); answers this host's own figures of each ({name: figures})."""
    body = await _body(request)
    own = {}
    for name, d in request.app[ENDPOINT].deployments.items():
        if d.autoscaler is not None:
            own[name] = d.autoscaler.hear(body.get(name))
    return web.json_response(own)


async def revive_deployment(request: web.Request) -> web.Response:
    ep = request.app[ENDPOINT]
    return web.json_response(await ep.revive_deployment(request.match_info["name"], _timeout(request)))


async def remove_deployment(request: web.Request) -> web.Response:
    await request.app[ENDPOINT].remove_deployment(request.match_info["name"])
    return web.json_response({})


async def set_traffic(request: web.Request) -> web.Response:
    body = await _body(request)
    traffic, mirror = body.get("traffic") or {}, body.get("mirror_traffic") or {}
    if not isinstance(traffic, dict) or not isinstance(mirror, dict):
        raise OrderRefused(400, "traffic and mirror_traffic must be objects {deployment: percent}")
    await request.app[ENDPOINT].set_traffic(traffic, mirror)
    return web.json_response({})


async def set_auth(request: web.Request) -> web.Response:
    request.app[ENDPOINT].set_auth((await _body(request)).get("auth_mode"))
    return web.json_response({})


async def reload_keys(request: web.Request) -> web.Response:
    request.app[ENDPOINT].reload_keys()
    return web.json_response({})


async def reload_tls(request: web.Request) -> web.Response:
    """Re-read the certificate, key and client CA; new handshakes get them, open connections keep theirs.
    Refused (the old files stay served) when they cannot be used, or without TLS."""
    tls = request.app[TLS]
    if not isinstance(tls, Tls):
        raise OrderRefused(409, "this endpoint host serves no TLS (no listen.certificate)", "no_tls")
    try:
        return web.json_response(tls.reload())
    except TlsError as e:
        raise OrderRefused(422, f"{e}; the host keeps serving {tls.facts['sha256']}", "tls_refused") from None


async def shutdown(request: web.Request) -> web.Response:
    request.app[STOP].set()
    return web.json_response({})


def make_admin(
    ep: Endpoint, port: int, stop: asyncio.Event, listen: ListenSettings, tls: Tls | None = None
) -> web.Application:
    app = web.Application(middlewares=[refusals], client_max_size=4 * 1024 * 1024)
    app[ENDPOINT], app[PORT], app[STOP], app[LISTEN], app[TLS] = ep, port, stop, listen, tls
    app.router.add_get("/status", status)
    app.router.add_post("/deployments/{name}", create_deployment)
    app.router.add_post("/deployments/{name}/roll", roll_deployment)
    app.router.add_post("/deployments/{name}/scale", scale_deployment)
    app.router.add_post("/deployments/{name}/revive", revive_deployment)
    app.router.add_put("/deployments/{name}/scaling", set_scaling)
    app.router.add_delete("/deployments/{name}", remove_deployment)
    app.router.add_put("/autoscale/peers", share_load)
    app.router.add_put("/traffic", set_traffic)
    app.router.add_put("/auth", set_auth)
    app.router.add_post("/keys/reload", reload_keys)
    app.router.add_post("/tls/reload", reload_tls)
    app.router.add_post("/shutdown", shutdown)
    return app
