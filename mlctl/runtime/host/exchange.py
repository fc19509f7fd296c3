"""One request's exchange with a deployment's instances: a slot, the send, the answer or a timeout.

One way through, `Exchange`, with these outcomes: 200 passed on, 424 for an instance's non-200, 408 at
the request timeout or 503 with no ready instance, 502 when the instance fails to answer. It runs by
callbacks: in the usual case (a slot free and a kept-alive connection idle at once) no task and no
coroutine is made, and the instance's answer becomes the client's in the same loop step; otherwise a
task waits for a slot or a new connection, then the exchange goes on by the same callbacks.
`forward()` awaits an Exchange (mirror copies, swagger.json).
A request is tried on another instance only when it never reached the first (the connection could
not be made). Once sent, a lost connection is a 502: the request may be what killed the instance
(a poison request retried would take down every instance in turn).
"""

from __future__ import annotations

import asyncio
import logging

from .messages import Pending, Response, json_response
from .instances import Instance
from .supervisor import Deployment
from .upstream import ConnectionFailed

log = logging.getLogger("mlctl.host")


def message(status: int, text: str, headers: list | None = None) -> Response:
    return json_response(status, {"message": text}, headers)


def timed_out(d: Deployment) -> Response:
    """The answer at the deployment's request timeout: 408, or 503 when no instance is ready (but for a
    deployment scaled to zero: an instance was starting for it, so 408)."""
    if d.ready_count() == 0 and not d.scales_to_zero:
        return message(503, f"deployment {d.spec.name!r} has no ready instance")
    if d.ready_count() == 0:
        return message(
            408,
            f"request timed out after {d.spec.request_settings['request_timeout_ms']} ms while deployment "
            f"{d.spec.name!r}, scaled to zero, started an instance (request_timeout_ms; see docs/autoscaling.md)",
        )
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
    d.slots.suspect(inst)
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


def _abandon_later(d: Deployment, conn, serial: int) -> None:
    """After a timeout: give the instance its own (longer) scoring timeout + 1 s, then close the connection."""
    d.loop.call_later(d.spec.instance_timeout_ms / 1000 - d.spec.timeout_s + 1, conn.abort, serial)


_waiting: set[asyncio.Task] = set()  # exchanges waiting for a slot or a connection (kept from the GC)


class Exchange(Pending):
    """A request's trip to deployment `d`. `start()` sends it at once when it can, else a task waits for a
    slot or a connection; the answer, built by `finish(response)` (the caller's bookkeeping, called once),
    is resolved from upstream.py's end-of-exchange callback or from the timeout's timer."""

    __slots__ = (
        "d",
        "method",
        "target",
        "headers",
        "body",
        "finish",
        "inst",
        "conn",
        "serial",
        "answer",
        "timer",
        "task",
    )

    def __init__(self, d: Deployment, method: str, target: str, headers: bytes, body: bytes, finish):
        self.callback = self.response = None
        self.d, self.method, self.target, self.finish = d, method, target, finish
        self.headers, self.body = headers, body
        self.conn = self.task = None

    def start(self) -> "Exchange":
        """Send now on a free slot and an idle kept-alive connection, else wait for them in a task; either
        way the request times out at the deployment's request timeout from now."""
        d = self.d
        self.timer = d.loop.call_at(d.loop.time() + d.spec.timeout_s, self._expired)
        inst = d.slots.try_acquire()
        if inst is not None:
            sent = inst.pool.send(self.method, self.target, self.headers, self.body, self._ended)
            if sent is not None:
                self._sent(inst, sent)
                return self
            d.slots.release(inst)
        self.task = d.loop.create_task(self._wait())
        _waiting.add(self.task)
        self.task.add_done_callback(_waiting.discard)
        return self

    def _sent(self, inst: Instance, sent: tuple) -> None:
        self.inst = inst
        self.conn, self.serial, self.answer = sent

    async def _wait(self) -> None:
        """The general way: a slot (FIFO, until the timeout), and a new connection when none is idle. A
        connection that cannot be made is tried once on another instance."""
        d = self.d
        exclude = None
        try:
            for attempt in (0, 1):
                inst = d.slots.try_acquire(exclude) or await d.slots.acquire(self.timer.when(), exclude)
                try:
                    sent = inst.pool.send(
                        self.method, self.target, self.headers, self.body, self._ended
                    ) or await inst.pool.request(self.method, self.target, self.headers, self.body, self._ended)
                except ConnectionFailed as e:
                    d.slots.release(inst)
                    if attempt:
                        self._answer(failed(d, e, None))
                        return
                    log.info("%s instance %d: %s; trying another instance", d.spec.name, inst.index, e)
                    exclude = inst
                    continue
                except BaseException:  # cancelled while connecting (the timeout, or the host stops)
                    d.slots.release(inst)
                    raise
                self._sent(inst, sent)
                return
        except asyncio.TimeoutError:
            self._answer(timed_out(d))
        except asyncio.CancelledError:
            self._answer(message(500, "the gateway stopped before this request was answered"))
            raise
        except Exception:
            self._broken()

    def _answer(self, response: Response) -> None:
        """The client's answer (once): the timer stops, `finish` does the bookkeeping."""
        if self.response is not None:
            return
        self.timer.cancel()
        try:
            self.resolve(self.finish(response))
        except Exception:
            self._broken()

    def _ended(self) -> None:
        """The exchange with the instance is over (upstream.py calls this once, never from send()):
        release the slot, then answer, unless the timeout did already."""
        d, answer = self.d, self.answer
        d.slots.release(self.inst)
        error = answer.exception()  # read even when unused: an exception never read is logged at GC
        if self.response is not None:
            return
        if error is None:
            self._answer(answered(*answer.result()))
        else:  # sent: never sent again (see the module's docstring)
            self._answer(failed(d, error, self.inst))

    def _expired(self) -> None:
        if self.response is not None:
            return
        if self.conn is not None:
            _abandon_later(self.d, self.conn, self.serial)
        elif self.task is not None:  # still waiting for a slot or a connection
            self.task.cancel()
        try:
            self.resolve(self.finish(timed_out(self.d)))
        except Exception:
            self._broken()

    def _broken(self) -> None:
        """A bug on the way (logged): the client still gets an answer, and the connections stay usable."""
        log.exception("%s: answering a request failed", self.d.spec.name)
        self.resolve(message(500, "the gateway failed to answer this request"))


async def forward(d: Deployment, method: str, target: str, body: bytes, headers: bytes) -> Response:
    """An Exchange, awaited: deployment `d`'s answer by its request timeout."""
    exchange = Exchange(d, method, target, headers, body, _unchanged).start()
    if exchange.response is not None:
        return exchange.response
    answer = d.loop.create_future()
    exchange.callback = answer.set_result
    try:
        return await answer
    except asyncio.CancelledError:  # (the host stops) the answer, if one still comes, goes nowhere
        exchange.callback = None
        if exchange.task is not None:
            exchange.task.cancel()
        raise


def _unchanged(response: Response) -> Response:
    return response
