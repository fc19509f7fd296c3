"""One request's exchange with a deployment's instances: a slot, the send, the answer or a timeout.

Two ways through, with the same outcomes (200 passed on, 424 for an instance's non-200, 408 at the
request timeout or 503 with no ready instance, 502 when the instance fails to answer):
- `Exchange`, by callbacks, for the usual case (a slot free and a kept-alive connection idle at
  once): no task and no coroutine; the instance's answer becomes the client's in the same loop step;
- `forward()`, a coroutine, for the rest: waiting for a slot or a connection, mirror copies,
  swagger.json.
A request is tried on another instance only when it never reached the first (the connection could
not be made). Once sent, a lost connection is a 502: the request may be what killed the instance
(a poison request retried would take down every instance in turn).
"""

from __future__ import annotations

import asyncio
import functools
import logging

from .messages import Pending, Response, json_response
from .instances import Instance
from .supervisor import Deployment
from .upstream import ConnectionFailed

log = logging.getLogger("mlctl.host")


def message(status: int, text: str, headers: list | None = None) -> Response:
    return json_response(status, {"message": text}, headers)


def timed_out(d: Deployment) -> Response:
    """The answer at the deployment's request timeout: 408, or 503 when no instance is ready."""
    if d.ready_count() == 0:
        return message(503, f"deployment {d.spec.name!r} has no ready instance")
    return message(
        408,
        f"request timed out after {d.spec.request_settings['request_timeout_ms']} ms "
        f"(request_timeout_ms of deployment {d.spec.name!r})",
    )


def failed(d: Deployment, error: ConnectionFailed, inst: Instance | None) -> Response:
    """502 for a request the instance did not answer (`inst`: the one it was sent to, if it was)."""
    if not error.sent or inst is None:
        return message(502, f"no instance of deployment {d.spec.name!r} could be reached: {error}")
    log.warning(
        "%s instance %d: %s while handling a request (not retried: the request may be the cause)",
        d.spec.name,
        inst.index,
        error,
    )
    d.suspect(inst)
    return message(
        502,
        f"instance {inst.index} of deployment {d.spec.name!r} failed while handling this request "
        f"({error}); it was not retried on another instance, since it may be what made the "
        f"instance fail. If the instance's process ended it is restarted",
    )


def answered(status: int, reason: str, passed: bytes, data: bytes) -> Response:
    """The client's answer from an instance's: passed on when 200, else 424 naming the instance's status."""
    if status != 200:
        return Response(
            424,
            data,
            [("ms-azureml-model-error-statuscode", str(status)), ("ms-azureml-model-error-reason", reason)],
            passed,
        )
    return Response(status, data, [], passed)


def _log_retry(d: Deployment, inst: Instance, error: ConnectionFailed) -> None:
    log.info("%s instance %d: %s; trying another instance", d.spec.name, inst.index, error)


def _abandon_later(d: Deployment, conn, serial: int) -> None:
    """After a timeout: give the instance its own (longer) scoring timeout + 1 s, then close the connection."""
    d.loop.call_later(d.spec.instance_timeout_ms / 1000 - d.spec.timeout_s + 1, conn.abort, serial)


def _expire(answer: asyncio.Future) -> None:
    if not answer.done():
        answer.set_exception(asyncio.TimeoutError())


async def _call(d: Deployment, method: str, target: str, headers: bytes, body: bytes, deadline: float):
    """Take a slot, send to the instance, await the answer until `deadline` (TimeoutError past it).

    The slot is held until the instance answers, even after a timeout (bounded by the instance's
    own timeout + 1 s). A connection that cannot be made is tried once on another instance; a
    request sent is never sent again (ConnectionFailed, with the instance it was sent to)."""
    loop = d.loop
    exclude = None
    for attempt in (0, 1):
        inst = d.try_acquire(exclude) or await d.acquire(deadline, exclude)
        try:
            on_done = functools.partial(d.release, inst)
            conn, serial, answer = inst.pool.send(method, target, headers, body, on_done) or await inst.pool.request(
                method, target, headers, body, on_done
            )
        except ConnectionFailed as e:
            d.release(inst)
            if attempt:
                raise
            _log_retry(d, inst, e)
            exclude = inst
            continue
        # the timer completes the future early; the exchange goes on and releases the slot when it ends
        timer = loop.call_at(deadline, _expire, answer)
        try:
            return await answer
        except ConnectionFailed as e:
            e.instance = inst
            raise
        except asyncio.TimeoutError:
            _abandon_later(d, conn, serial)
            raise
        finally:
            timer.cancel()


async def forward(
    d: Deployment, method: str, target: str, body: bytes, headers: bytes, deadline: float | None = None
) -> Response:
    """Answer from deployment `d` by `deadline` (default: its request timeout from now); see _call."""
    if deadline is None:
        deadline = d.loop.time() + d.spec.timeout_s
    try:
        return answered(*await _call(d, method, target, headers, body, deadline))
    except asyncio.TimeoutError:
        return timed_out(d)
    except ConnectionFailed as e:
        return failed(d, e, e.instance)


class Exchange(Pending):
    """A live request's trip to deployment `d`, by callbacks. `begin()` sends it if it can at once;
    the answer, built by `finish(response)` (the gateway's bookkeeping, called once), is then
    resolved from upstream.py's end-of-exchange callback or from the timeout's timer."""

    __slots__ = ("d", "method", "target", "headers", "body", "finish", "inst", "conn", "serial", "answer", "timer")

    def __init__(self, d: Deployment, method: str, target: str, headers: bytes, body: bytes, finish):
        self.callback = self.response = None
        self.d, self.method, self.target, self.finish = d, method, target, finish
        self.headers, self.body = headers, body

    def begin(self) -> bool:
        """Send now on a free slot and an idle kept-alive connection: True. Else False, holding nothing
        (the caller goes the general way, forward())."""
        d = self.d
        inst = d.try_acquire()
        if inst is None:
            return False
        sent = inst.pool.send(self.method, self.target, self.headers, self.body, self._ended)
        if sent is None:
            d.release(inst)
            return False
        self.inst = inst
        self.conn, self.serial, self.answer = sent
        self.timer = d.loop.call_at(d.loop.time() + d.spec.timeout_s, self._expired)
        return True

    def _ended(self) -> None:
        """The exchange with the instance is over (upstream.py calls this once, never from send()):
        release the slot, then answer, unless the timeout did already."""
        d, answer = self.d, self.answer
        d.release(self.inst)
        error = answer.exception()  # read even when unused: an exception never read is logged at GC
        if self.response is not None:
            return
        self.timer.cancel()
        try:
            if error is None:
                self.resolve(self.finish(answered(*answer.result())))
            else:  # sent on a kept-alive connection: never sent again (see the module's docstring)
                self.resolve(self.finish(failed(d, error, self.inst)))
        except Exception:
            self._broken()

    def _expired(self) -> None:
        if self.response is None:
            try:
                _abandon_later(self.d, self.conn, self.serial)
                self.resolve(self.finish(timed_out(self.d)))
            except Exception:
                self._broken()

    def _broken(self) -> None:
        """A bug on the way (logged): the client still gets an answer, and the connections stay usable."""
        log.exception("%s: answering a request failed", self.d.spec.name)
        self.resolve(message(500, "the gateway failed to answer this request"))
