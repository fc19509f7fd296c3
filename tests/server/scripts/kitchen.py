"""Undecorated score.py (the diabetes Ridge's weights, kitchen-ridge.json, predicted in plain Python: none of the
servers the tests start imports numpy or scikit-learn) whose JSON input can also ask it to fail, sleep, block,
print, echo, be preempted, or name the thread (and process) it ran on."""

import json
import logging
import os
import sys
import threading
import time

log = logging.getLogger("kitchen")
model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "kitchen-ridge.json")) as f:
        model = json.load(f)
    print("kitchen init done")


def _block(spec):
    with open(spec["started"].replace("{pid}", str(os.getpid())), "w") as f:  # {pid}: one file per worker process
        f.write("started")
    deadline = time.monotonic() + 30
    while not os.path.exists(spec["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)


def _preempted(spec):
    """Use spec["cpu_ms"] of CPU time on CPU spec["cpu"], where CPU-bound processes run: a short call that the
    kernel preempts, whose wall time is several times the time it holds its thread."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {spec["cpu"]})  # this thread only
    end = time.thread_time() + spec["cpu_ms"] / 1000.0
    while time.thread_time() < end:
        pass
    os.sched_setaffinity(0, before)


def _predict(rows):
    """Ridge.predict: a ValueError for what is not rows of as many numbers as the model has weights."""
    coef = model["coef"]
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(coef) for r in rows):
        raise ValueError(f"expected rows of {len(coef)} numbers")
    return [model["intercept"] + sum(c * float(x) for c, x in zip(coef, row)) for row in rows]


def run(raw_data, request_headers):
    req = json.loads(raw_data)
    if "exit" in req:
        sys.exit(req["exit"])
    if "fail" in req:
        raise RuntimeError("asked to fail: " + str(req["fail"]))
    if "spin" in req:  # a runaway pure-Python loop
        end = time.monotonic() + req["spin"]
        while time.monotonic() < end:
            pass
    if "sleep" in req:
        time.sleep(req["sleep"])
    if "block" in req:
        _block(req["block"])
    if "preempted" in req:
        _preempted(req["preempted"])
    if "print" in req:
        print("printed", req["print"])
        log.warning("logged %s", req["print"])
    if "thread" in req:
        return {"thread": threading.get_ident()}
    if "main" in req:  # on the event loop's thread (the main one) or on a worker thread
        return {"main": threading.current_thread() is threading.main_thread()}
    if "pid" in req:
        return {"pid": os.getpid()}
    if "echo" in req:
        return {"raw": raw_data, "headers": request_headers}
    if "data" in req:
        return _predict(req["data"])
    return {"ok": True}
