"""The fork server ("zygote"): a pre-started interpreter that has imported the scoring server and a
deployment's packages, and forks a scoring-server instance per request of its endpoint host.

Run as ``python -m mlctl.runtime.server.zygote --socket PATH`` in the environment's interpreter, with the
environment the instances get. It imports the server's modules, binds PATH (mode 0600), writes ``ready``
on stdout and serves one request per connection: a length-prefixed JSON object and, as SCM_RIGHTS, the
descriptor the instance writes its output to, the read end of the host's lifeline pipe and the read end of its
"go" pipe:

    {"preload": [module, ...], "argv": [server arguments], "env": {...}, "cwd": path,
     "shadowed": [top-level module names the instance's code provides], "tmp": "/tmp/NAME" (optional)}

It imports the preload modules it has not imported yet, forks, and answers ``{"pid": N}``, then
``{"exit": code}`` (negative: the signal) once that child ended. An import that fails or starts a Python thread
makes it answer ``{"refused": why}`` and exit: its state is no longer what a fresh start would have, so the host
starts instances fresh from then on (`mlctl.runtime.kit.forkservers` is the host's side, and says when).

The child becomes the instance exactly as a fresh start would be: a session and process group of its own, then
it waits for the host's one byte on the go pipe (the host moves it into the instance's cgroups first: a confined
fork server runs under the deployment's uid, which may not), its private folder `tmp` made (0700; removed once it
ended), its output on the given descriptor, the request's environment, working folder, sys.argv and
sys.path, numpy's global random state reseeded, then the server's `main`, which imports the user's script and
runs its `init()`: user code runs only after the fork. It dies with the host (SIGKILL to its process group when
the lifeline reaches its end), not with the zygote. Runs on Python 3.7 too: standard library only, besides mlctl.

When mlctl runs as root, the host starts this server confined (`mlctl.runtime.kit.confinement`: its mount
namespace, the deployment's uid, no capabilities, no_new_privs): what it imports never runs as root, and each
child is confined as the server is (docs/runtime.md "Confined instances by fork").
"""

from __future__ import annotations

import argparse
import array
import importlib
import importlib.util
import json
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import sys
import threading

SERVER_MODULES = ("mlctl.runtime.server.startup", "mlctl.runtime.server.scoring", "mlctl.runtime.server.swagger")
OPTIONAL_MODULES = ("uvloop",)
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
MAX_REQUEST = 4 << 20
MAX_FDS = 3  # the output, the lifeline, the go pipe
PRIVATE_TMP = re.compile(r"/tmp/[A-Za-z0-9_.-]{1,100}\Z")


class Refusal(Exception):
    """This interpreter can no longer fork instances that equal a fresh start (the message says why)."""


def preload(names, done: set) -> None:
    """Import each of `names` not imported yet (a name whose top package is not installed is skipped: the
    instance imports or fails on it itself). Refusal when an import fails or leaves a Python thread running."""
    for name in names:
        if name in done or not isinstance(name, str) or not MODULE_NAME.match(name):
            continue
        done.add(name)
        try:
            if importlib.util.find_spec(name.split(".")[0]) is None:
                continue
            importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - whatever it raised, this interpreter is not clean
            raise Refusal(f"importing {name} failed ({type(exc).__name__}: {exc})") from None
        if threading.active_count() > 1:
            others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
            raise Refusal(f"importing {name} started a Python thread ({', '.join(others)})")


def exit_code(status: int) -> int:
    """Pure: a wait status as asyncio reports it (the exit code, or minus the signal that ended it)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """One request: the JSON object and the descriptors that came with it."""
    fds = array.array("i")
    head = b""
    data = b""
    want = 4
    while len(head) < 4 or len(data) < want:
        msg, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        if not msg:
            raise ValueError("the request ended early")
        if len(head) < 4:
            take = 4 - len(head)
            head, msg = head + msg[:take], msg[take:]
            if len(head) == 4:
                want = struct.unpack(">I", head)[0]
                if want > MAX_REQUEST:
                    raise ValueError("the request is too large")
        data += msg
    return json.loads(data[:want].decode()), list(fds)


def send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the host stopped listening for this instance: it watches the process itself


class Zygote:
    """The server: its listening socket, the connection of each live child by pid, the modules imported."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            if os.path.exists(path):
                os.unlink(path)
            self.listener.bind(path)
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.children: dict[int, socket.socket] = {}
        self.tmps: dict[int, str] = {}  # each child's private folder, removed once it ended
        self.done: set = set()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "reap")

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    self.accept()
                elif key.data == "reap":
                    self.reap()
                else:
                    self.forget(key.fileobj)

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(30)
        fds: list[int] = []
        try:
            request, fds = receive(conn)
            if len(fds) != MAX_FDS:
                raise ValueError("the request needs the output, lifeline and go descriptors")
            preload(request.get("preload") or (), self.done)
            pid = self.fork(request, fds, conn)
        except Refusal as exc:
            send(conn, {"refused": str(exc)})
            conn.close()
            os._exit(0)  # nothing more may be forked from this interpreter
        except (OSError, ValueError, TypeError, KeyError) as exc:
            send(conn, {"error": f"{type(exc).__name__}: {exc}"})
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        send(conn, {"pid": pid})
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def forget(self, conn) -> None:
        """The host closed its side of a child's connection: the child runs on, unwatched by this server."""
        try:
            if conn.recv(64):
                return
        except OSError:
            pass
        self.selector.unregister(conn)
        conn.close()
        self.children = {pid: c for pid, c in self.children.items() if c is not conn}

    def reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            tmp = self.tmps.pop(pid, None)
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            conn = self.children.pop(pid, None)
            if conn is not None:
                send(conn, {"exit": exit_code(status)})
                self.selector.unregister(conn)
                conn.close()

    def fork(self, request: dict, fds: list[int], conn: socket.socket) -> int:
        argv, env, cwd = list(request["argv"]), dict(request["env"]), str(request["cwd"])
        tmp = request.get("tmp")
        if tmp is not None and not (isinstance(tmp, str) and PRIVATE_TMP.match(tmp) and ".." not in tmp):
            raise ValueError(f"the private folder {tmp!r} is not a folder of /tmp")
        shadowed = {str(name) for name in request.get("shadowed") or ()} - {"mlctl"}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            if tmp is not None:
                self.tmps[pid] = tmp
            return pid
        code = 1
        try:
            conn.close()
            self.become(argv, env, cwd, tmp, fds)
            for name in [m for m in sys.modules if m.split(".")[0] in shadowed]:
                del sys.modules[name]  # the instance's own module of that name wins, as first on its sys.path
            from mlctl.runtime.server.startup import main

            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported on the instance's output
            import traceback

            traceback.print_exc()
        finally:
            from mlctl.runtime.server.startup import exit_now

            exit_now(code)
        return 0  # never reached

    def become(self, argv: list, env: dict, cwd: str, tmp: str | None, fds: list[int]) -> None:
        """In the child: everything a fresh start of the server would be, before the server's main runs."""
        out, lifeline, go = fds
        os.setsid()
        if os.read(go, 1) != b"g":  # the host moved it into its cgroups, or ended (then so does the child)
            raise SystemExit(1)
        os.close(go)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)  # (what an instance of the same name left, if anything)
            os.mkdir(tmp, 0o700)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGPIPE else signal.SIG_DFL)
        self.selector.close()
        for conn in [self.listener, *self.children.values()]:
            conn.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py"), *argv]
        sys.path[0] = cwd  # as `python -m` run from `cwd` puts it first
        importlib.invalidate_caches()
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is not None:  # each instance its own global random state, as a fresh start has
            numpy_random.seed()
        lifeline = os.dup(lifeline)  # (the descriptors received are closed by the caller's finally)
        threading.Thread(target=_die_with_host, args=(lifeline,), name="mlctl-lifeline", daemon=True).start()


def _die_with_host(fd: int) -> None:
    """Block until the host's end of the lifeline closes (the host ended), then kill this instance's group."""
    while True:
        try:
            if not os.read(fd, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.killpg(0, signal.SIGKILL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlctl.runtime.server.zygote")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
        sys.path[0] = os.devnull  # `-m` put the working folder first: nothing is imported from there (the
        # child puts its own folder in this place, as `-m` does for a fresh start)
    zygote = Zygote(args.socket)
    try:
        preload(SERVER_MODULES, zygote.done)
        preload([m for m in OPTIONAL_MODULES if importlib.util.find_spec(m) is not None], zygote.done)
    except Refusal as exc:
        print(f"refused: {exc}", flush=True)
        return 0
    print("ready", flush=True)
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
