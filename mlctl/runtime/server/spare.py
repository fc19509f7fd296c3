"""The warm spare of a docker deployment: a scoring server's interpreter started ahead in a container of its own,
which has imported the server and the environment's packages and waits to become the deployment's next instance.

Run as ``python -m mlctl.runtime.server.spare --socket /run/mlctl/spare.sock --preload NAME ...`` in a container
created with everything a fresh instance container has but its model and code (docs/runtime.md "Warm spare
containers"). It imports the server's modules and the named ones (`zygote.preload`: an import that fails or leaves a
Python thread running is refused), then binds its socket (made under another name, then renamed: the host sees it
only once it accepts) and waits for one request of its host: a length-prefixed JSON object

    {"argv": [server arguments after `-m mlctl.runtime.server`], "env": {...}, "cwd": path,
     "shadowed": [top-level module names the instance's code provides]}

sent once the host has bound the instance's model and code into the container (read-only, at Azure's paths) and
made its output FIFO. It answers ``{"ok": true}``, removes its socket and becomes the instance as a fresh start
would be: the request's environment, working folder, sys.argv and sys.path, then the server's `main`, which imports
the user's script and runs its `init()`: user code runs only after the claim. A refusal is printed
(``refused: why``) and the process exits 3; the host then starts instances fresh. Standard library only, besides
mlctl (Python 3.7 too).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import socket
import sys

from mlctl.runtime.server.zygote import OPTIONAL_MODULES, SERVER_MODULES, Refusal, preload, receive

REFUSED = 3  # the exit code of a spare that refused (its imports failed or started a thread)


def listen(path: str) -> socket.socket:
    """The spare's socket at `path` (mode 0600), listening before it appears under that name."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = path + ".new"
    old = os.umask(0o177)
    try:
        for name in (staging, path):
            if os.path.exists(name):
                os.unlink(name)
        listener.bind(staging)
    finally:
        os.umask(old)
    listener.listen(1)
    os.rename(staging, path)
    return listener


def request_of(message: dict) -> tuple[list, dict, str, set]:
    """Pure: (argv, env, cwd, shadowed) of a claim, checked for their types (ValueError otherwise)."""
    argv, env, cwd = message.get("argv"), message.get("env"), message.get("cwd")
    shadowed = message.get("shadowed") or []
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        raise ValueError("argv is not a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env is not a mapping of strings")
    if not isinstance(cwd, str) or not isinstance(shadowed, list):
        raise ValueError("cwd is not a string or shadowed not a list")
    return argv, env, cwd, {str(name) for name in shadowed} - {"mlctl"}


def wait_for_claim(path: str) -> tuple[list, dict, str, set]:
    """Serve the spare's socket until one valid claim came (answered ok); the socket is removed then."""
    listener = listen(path)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(30)
        try:
            message, fds = receive(conn)
            for fd in fds:
                os.close(fd)
            claim = request_of(message)
        except (OSError, ValueError, TypeError) as exc:
            try:
                conn.sendall(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
            except OSError:
                pass
            conn.close()
            continue
        conn.sendall(b'{"ok": true}\n')
        conn.close()
        listener.close()
        os.unlink(path)
        return claim


def become(argv: list, env: dict, cwd: str, shadowed: set) -> None:
    """Everything a fresh start of the server would be, before the server's main runs."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py"), *argv]
    sys.path[0] = cwd  # as `python -m` run from `cwd` puts it first
    for name in [m for m in sys.modules if m.split(".")[0] in shadowed]:
        del sys.modules[name]  # the instance's own module of that name wins, as first on its sys.path
    importlib.invalidate_caches()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlctl.runtime.server.spare")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--preload", nargs="*", default=[])
    args = parser.parse_args(argv)
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
        sys.path[0] = os.devnull  # `-m` put the working folder first: nothing is imported from there
    done: set = set()
    try:
        preload(SERVER_MODULES, done)
        preload([m for m in OPTIONAL_MODULES if importlib.util.find_spec(m) is not None], done)
        preload(args.preload, done)
    except Refusal as exc:
        print(f"refused: {exc}", flush=True)
        return REFUSED
    server_argv, env, cwd, shadowed = wait_for_claim(args.socket)
    become(server_argv, env, cwd, shadowed)
    from mlctl.runtime.server.startup import main as serve

    return serve(server_argv)


if __name__ == "__main__":
    from mlctl.runtime.server.startup import exit_now

    exit_now(main())
