"""Start-up and shutdown: exit 3 on init failure, env-var fallbacks, unix socket, SIGTERM drain, old Pythons."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servertools import SCRIPTS, launch, refuses_connections, server_env, wait_for_file

FAILING = {
    "init_raises": (
        "def init():\n    raise ValueError('no model here 4471')\n\ndef run(raw_data):\n    return 1\n",
        ["User's init function failed", "ValueError: no model here 4471", "Model Directory Contents:", "diabetes.pkl"],
    ),
    "import_error": (
        "import not_a_module_8812\n\ndef init():\n    pass\n\ndef run(raw_data):\n    return 1\n",
        ["ModuleNotFoundError", "not_a_module_8812"],
    ),
    "syntax_error": ("def init(:\n    pass\n", ["SyntaxError"]),
    "no_run": ("def init():\n    pass\n", ["does not have a run() function"]),
    "no_init": ("def run(raw_data):\n    return 1\n", ["does not have a init() function"]),
    "star_args": ("def init():\n    pass\n\ndef run(*args):\n    return 1\n", ["cannot accept positional-only"]),
}


TRACEBACK_CASES = {"init_raises", "import_error", "syntax_error"}


def _assert_model_tree(log: str, models: Path) -> None:
    """The log shows an indented tree of the model directory (its name, then its files one level in)."""
    assert "Model Directory Contents:" in log, log
    lines = log.splitlines()
    head = next(i for i, ln in enumerate(lines) if "Model Directory Contents:" in ln)
    tree = [ln.split(" - ", 1)[1] for ln in lines[head + 1 :] if " - " in ln]
    assert tree[0] == models.name + os.sep
    assert "    diabetes.pkl" in tree and "    iris.pkl" in tree


@pytest.mark.parametrize("case", sorted(FAILING))
def test_broken_script_exits_3_before_ready(servers, tmp_path, models, case):
    source, expected = FAILING[case]
    script = tmp_path / "score.py"
    script.write_text(source)
    server = servers.start(script, expect_ready=False)
    assert server.proc.wait(60) == 3
    log = server.log()
    for fragment in expected:
        assert fragment in log, log
    if case in TRACEBACK_CASES:
        assert "Traceback (most recent call last)" in log
    _assert_model_tree(log, models)
    assert "listening on" not in log


def test_missing_entry_script_exits_3(servers, tmp_path, models):
    server = servers.start(tmp_path / "nope.py", expect_ready=False)
    assert server.proc.wait(60) == 3
    assert f"Entry script not found: {tmp_path / 'nope.py'}" in server.log()
    _assert_model_tree(server.log(), models)
    assert "listening on" not in server.log()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_runs_once_before_the_port_opens(servers, tmp_path):
    """Nothing answers (not even GET /) until init() has returned; then GET / is 200 Healthy."""
    started, release = tmp_path / "init-started", tmp_path / "init-release"
    script = tmp_path / "score.py"
    script.write_text(SLOW_INIT.format(started=str(started), release=str(release)))
    port = _free_port()
    server = servers.start(script, "--port", str(port), expect_ready=False)
    end = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < end and server.proc.poll() is None, server.log()
        time.sleep(0.02)
    with pytest.raises(ConnectionRefusedError):  # init() is running: the port is not open yet
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert "listening on" not in server.log()
    release.write_text("go")
    assert server.wait_log(f"listening on http://127.0.0.1:{port}", deadline_s=30)
    server.port = port
    a = server.call("GET", "/")
    assert (a.status, a.body) == (200, b"Healthy")
    assert server.call("POST", "/score", b"x").json() == 1  # init() ran exactly once
    assert server.call("POST", "/score", b"x").json() == 1
    assert server.stop() == 0


SLOW_INIT = """
import os, time
calls = 0

def init():
    global calls
    calls += 1
    open({started!r}, "w").close()
    end = time.monotonic() + 30
    while not os.path.exists({release!r}) and time.monotonic() < end:
        time.sleep(0.01)

def run(raw_data):
    return calls
"""


def test_port_in_use_exits_1_with_a_clear_message(servers, kitchen):
    server = servers.start(SCRIPTS / "kitchen.py", "--port", str(kitchen.port), expect_ready=False)
    assert server.proc.wait(60) == 1
    assert f"cannot listen on 127.0.0.1:{kitchen.port}" in server.log()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    "flags, env, message",
    [
        (["--max-concurrent", "0"], {}, "error: --max-concurrent must be >= 1, got 0"),
        (["--port", "http"], {}, "argument --port: invalid int value: 'http'"),
        ([], {"MLCTL_SWITCH_INTERVAL": "fast"}, "error: environment variable MLCTL_SWITCH_INTERVAL must be a positive"),
    ],
    ids=["range", "type", "env"],
)
def test_bad_flag_value_exits_2(tmp_path, flags, env, message):
    proc = launch(tmp_path / "log", ["--entry-script", "x.py", *flags], env=env)
    assert proc.wait(30) == 2
    text = (tmp_path / "log").read_text()
    assert message in text and "Traceback" not in text


def test_azure_env_vars_stand_in_for_flags(tmp_path, models):
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "lib").mkdir()
    (app / "lib" / "helper_4410.py").write_text("SCALE = 3\n")  # importable only via AZUREML_SOURCE_DIRECTORY
    (app / "src" / "main_score.py").write_text(
        "import os\nimport helper_4410\n\ndef init():\n    print('env init done')\n\n"
        "def run(raw_data):\n    return {'scale': helper_4410.SCALE, 'model_dir': os.environ['AZUREML_MODEL_DIR']}\n"
    )
    log_file = tmp_path / "logs" / "server.log"
    out = tmp_path / "out.log"
    proc = launch(
        out,
        ["--port", "0", "--log-file", str(log_file)],
        cwd=tmp_path,
        env={
            "AML_APP_ROOT": str(app),
            "AZUREML_ENTRY_SCRIPT": "src/main_score.py",
            "AZUREML_MODEL_DIR": str(models),
            "AZUREML_SOURCE_DIRECTORY": "lib",
            "SCORING_TIMEOUT_MS": "4321",
            "AML_CORS_ORIGINS": "http://c.example",
            "HTTP_X_MS_SERVER_VERSION": "srv-7",
            "SERVICE_NAME": "svc-x",
            "SERVICE_VERSION": "9.9",
        },
    )
    try:
        end = time.monotonic() + 60
        while "listening on" not in out.read_text() and time.monotonic() < end:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.05)
        port = int(out.read_text().split("listening on http://127.0.0.1:")[1].split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/swagger.json?version=3")
        doc = conn.getresponse().read().decode()
        assert '"title": "svc-x"' in doc and '"version": "9.9"' in doc
        conn.request("POST", "/score", body=b"{}", headers={"Origin": "http://c.example"})
        resp = conn.getresponse()
        assert json.loads(resp.read()) == {"scale": 3, "model_dir": str(models)}
        assert resp.getheader("Access-Control-Allow-Origin") == "http://c.example"
        assert resp.getheader("x-ms-server-version") == "srv-7"
        conn.close()
        assert "Scoring timeout is set to 4321 ms" in out.read_text()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "env init done" in log_file.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_flags_win_over_env_vars(servers, tmp_path):
    server = servers.start(
        SCRIPTS / "kitchen.py",
        "--request-timeout-ms",
        "20000",
        env={"AZUREML_ENTRY_SCRIPT": str(tmp_path / "missing.py"), "SCORING_TIMEOUT_MS": "1"},
    )
    assert server.call("POST", "/score", {"sleep": 0.1}).status == 200
    assert f"entry script {SCRIPTS / 'kitchen.py'}" in server.log()


def _unix_call(path: str, method: str, target: str, body: bytes = b"") -> tuple:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(
        f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def test_unix_socket(tmp_path, models):
    sock = f"/tmp/mlctl-test-{os.getpid()}-{time.monotonic_ns()}.sock"
    log = tmp_path / "log"
    proc = launch(
        log, ["--entry-script", str(SCRIPTS / "kitchen.py"), "--model-dir", str(models), "--unix-socket", sock]
    )
    try:
        end = time.monotonic() + 60
        while "listening on" not in log.read_text() and time.monotonic() < end:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert f"listening on unix:{sock}" in log.read_text()
        assert _unix_call(sock, "GET", "/") == (200, b"Healthy")
        assert _unix_call(sock, "POST", "/score", b'{"ok": 1}') == (200, b'{"ok":true}')
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not os.path.exists(sock)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _sigterm_once_running(server, started: Path) -> None:
    """SIGTERM the server once its blocking request is running; it logs that it shuts down."""
    wait_for_file(started)
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.wait_log("Shutting down")


def test_sigterm_drains_in_flight_then_exits_0(servers, tmp_path):
    server = servers.start(SCRIPTS / "kitchen.py")
    started, release = tmp_path / "started", tmp_path / "release"
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault(
            "a", server.call("POST", "/score", {"block": {"started": str(started), "release": str(release)}})
        ),
        daemon=True,
    )
    t.start()
    _sigterm_once_running(server, started)
    assert refuses_connections(server.host, server.port)  # the listener closes: no new connections
    assert server.proc.poll() is None  # still finishing the request in flight
    release.write_text("go")
    t.join(30)
    assert result["a"].status == 200 and result["a"].json() == {"ok": True}
    assert server.proc.wait(30) == 0
    assert "Stopped." in server.log()


def _uv() -> str:
    try:
        from uv import (
            find_uv_bin,  # the uv package (a dependency of mlctl) ships the binary
        )

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv") or "uv"


def _old_python():
    """A Python 3.9 (else 3.10) interpreter: what uv finds, else a pyenv install.

    pyenv's versions folder is looked for under $PYENV_ROOT, ~/.pyenv and beside the running
    interpreter (a CI runner may set HOME elsewhere while running a pyenv Python)."""
    roots = [Path(os.environ["PYENV_ROOT"]) / "versions"] if os.environ.get("PYENV_ROOT") else []
    roots.append(Path.home() / ".pyenv" / "versions")
    if Path(sys.base_prefix).parent.name == "versions":
        roots.append(Path(sys.base_prefix).parent)
    for version in ("3.9", "3.10"):
        try:
            out = subprocess.run(
                [_uv(), "python", "find", "--no-project", version],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[-1]
        except (OSError, subprocess.TimeoutExpired):
            pass
        found = sorted(p for root in roots if root.is_dir() for p in root.glob(f"{version}.*/bin/python{version}"))
        if found:
            return str(found[-1])
    return None


# The oldest aiohttp the server supports (web.AppKey is new in 3.9): catches use of anything newer.
OLDEST_AIOHTTP = "aiohttp==3.9.0"


@pytest.fixture(scope="session")
def old_python_env(tmp_path_factory):
    """A uv virtualenv on Python 3.9 (or 3.10) with only the oldest supported aiohttp: the server's minimum.

    Skipped only when no such interpreter exists; set MLCTL_REQUIRE_OLD_PYTHON=1 (CI does) to fail instead."""
    python = _old_python()
    if python is None:
        if os.environ.get("MLCTL_REQUIRE_OLD_PYTHON", "0") not in ("", "0"):
            pytest.fail("MLCTL_REQUIRE_OLD_PYTHON is set but no Python 3.9 or 3.10 interpreter was found")
        pytest.skip("no Python 3.9 or 3.10 interpreter found")
    cache = Path(os.environ.get("MLCTL_CACHE") or tmp_path_factory.mktemp("cache"))
    venv = cache / "server-test-oldpy-aiohttp390"
    if not (venv / "bin" / "python").exists():
        subprocess.run([_uv(), "venv", "-q", "--python", python, str(venv)], check=True, timeout=120)
        subprocess.run(
            [_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), OLDEST_AIOHTTP],
            check=True,
            timeout=300,
        )
    return venv / "bin" / "python"


OLD_SCRIPT = """
import json, os, time
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    global scale
    scale = 2
    print("old init done")

@rawhttp
def run(request):
    if request.method == "GET":
        time.sleep(float(request.args.get("sleep", 0)))
        return {"model_dir": os.environ["AZUREML_MODEL_DIR"]}
    x = request.get_json()["x"]
    if x < 0:
        raise ValueError("negative")
    return AMLResponse(json.dumps({"y": x * scale}), 201, {"Content-Type": "application/json"})
"""


def test_runs_on_python_39_with_only_aiohttp(servers, tmp_path, old_python_env, models):
    probe = (
        "import sys, aiohttp, importlib.util as u; "
        "print(sys.version_info[:2], aiohttp.__version__, [m for m in ('orjson', 'uvloop', 'numpy', 'click', "
        "'yaml') if u.find_spec(m)])"
    )
    out = subprocess.run([str(old_python_env), "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() in ("(3, 9) 3.9.0 []", "(3, 10) 3.9.0 []")  # nothing else: no orjson, no uvloop
    script = tmp_path / "score.py"
    script.write_text(OLD_SCRIPT)
    server = servers.start(script, "--request-timeout-ms", "1000", python=str(old_python_env))
    assert server.call("GET", "/").status == 200
    a = server.call("POST", "/score", {"x": 21})
    assert (a.status, a.json()) == (201, {"y": 42})
    assert server.call("POST", "/score", {"x": -1}).status == 500
    for bad in (b"{nope", b"[" * 100_000, b"\xff\xfe"):  # the standard-library JSON path (no orjson)
        b = server.call("POST", "/score", bad, headers={"Content-Type": "application/json"})
        assert b.status == 400 and b.json()["message"]
    assert server.call("GET", "/score?sleep=3").json() == {"message": "Scoring timeout after 1000 ms"}
    assert server.call("GET", "/score").json() == {"model_dir": str(models)}
    for version in ("2", "3", "3.1"):
        assert server.call("GET", f"/swagger.json?version={version}").status == 200
    assert server.stop() == 0
    log = server.log()
    assert "Python 3.9" in log or "Python 3.10" in log
    assert "azmlinfsrv.print - old init done" in log and "POST /score 201" in log


def test_imports_only_stdlib_and_aiohttp():
    """Every module of the package (and the shims) loads nothing beyond the standard library,
    aiohttp and its own dependencies, and the optional uvloop and orjson."""
    import importlib.metadata as md
    import re

    allowed, todo = set(), ["aiohttp"]
    while todo:  # aiohttp's dependency closure (no extras), as installed here
        dist = todo.pop()
        if dist in allowed:
            continue
        allowed.add(dist)
        for req in md.requires(dist) or []:
            if "extra ==" in req:
                continue
            name = re.split(r"[ ;<>=!~\[(]", req, 1)[0].lower().replace("_", "-")
            try:
                md.distribution(name)
            except md.PackageNotFoundError:
                continue  # a marker-excluded dependency (e.g. async-timeout on 3.11)
            todo.append(name)
    allowed |= {"uvloop", "orjson"}
    code = """
import sys
before = set(sys.modules)  # what the interpreter's start-up (site, .pth files) loaded
import pkgutil, importlib
import mlctl.runtime.server as pkg
from mlctl.runtime.server.startup import SHIMS
sys.path.append(SHIMS)
names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names + ["azureml.contrib.services.aml_request", "azureml.contrib.services.aml_response",
                     "azureml.core.model", "azureml_inference_server_http.api.aml_request",
                     "azureml_inference_server_http.api.aml_response"]:
    importlib.import_module(name)
print(len(names), sorted({m.split(".")[0] for m in set(sys.modules) - before}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    ).stdout
    count, loaded = out.split(" ", 1)
    assert int(count) >= 12
    top = md.packages_distributions()
    outside = []
    for module in eval(loaded):  # a list literal printed above
        if (
            module in sys.stdlib_module_names
            or module in ("mlctl", "azureml", "azureml_inference_server_http", "cython_runtime")
            or module.startswith("_cython_")
        ):
            continue  # cython_runtime, _cython_3_x: loaded by Cython-compiled extensions (multidict, yarl)
        if not {d.lower().replace("_", "-") for d in top.get(module, [module])} & allowed:
            outside.append(module)
    assert outside == [], f"the scoring server imports modules outside stdlib + aiohttp: {outside}"


def test_second_sigterm_exits_without_waiting(servers, tmp_path):
    server = servers.start(SCRIPTS / "kitchen.py")
    started, release = tmp_path / "started", tmp_path / "never"
    outcome = {}

    def client() -> None:
        try:
            outcome["answer"] = server.call(
                "POST", "/score", {"block": {"started": str(started), "release": str(release)}}
            )
        except (OSError, http.client.HTTPException) as exc:
            outcome["error"] = exc

    t = threading.Thread(target=client, daemon=True)
    t.start()
    _sigterm_once_running(server, started)
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(20) == 1
    t.join(20)
    assert "error" in outcome  # the in-flight request was cut off, not answered
    assert "Second stop signal: exiting without waiting for 1 in-flight request(s)" in server.log()


def test_reuse_port_lets_processes_share_a_port(servers):
    first = servers.start(SCRIPTS / "kitchen.py", "--reuse-port")
    second = servers.start(SCRIPTS / "kitchen.py", "--reuse-port", "--port", str(first.port))
    assert second.port == first.port
    for i in range(40):  # fresh connections: the kernel spreads them over both processes
        assert first.call("POST", "/score", {"ok": 1}, headers={"x-request-id": f"rp-{i}"}).status == 200
    assert first.wait_log(r"POST /score 200 .* rp-\d+") and second.wait_log(r"POST /score 200 .* rp-\d+")
    plain = servers.start(SCRIPTS / "kitchen.py", "--port", str(first.port), expect_ready=False)
    assert plain.proc.wait(60) == 1  # without --reuse-port the port is taken


def test_log_goes_to_stdout_and_log_file_not_stderr(tmp_path, models):
    out, err, log_file = tmp_path / "out", tmp_path / "err", tmp_path / "file.log"
    script = tmp_path / "score.py"
    script.write_text(
        "import sys\n\ndef init():\n    print('to stdout 771')\n"
        "    print('to stderr 772', file=sys.stderr)\n\n"
        "def run(raw_data):\n    print('run printed 773')\n    return 1\n"
    )
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlctl.runtime.server",
                "--entry-script",
                str(script),
                "--model-dir",
                str(models),
                "--port",
                "0",
                "--log-file",
                str(log_file),
            ],
            stdout=o,
            stderr=e,
            env=server_env(),
            start_new_session=True,
        )
    try:
        end = time.monotonic() + 60
        while "listening on" not in out.read_text():
            assert time.monotonic() < end and proc.poll() is None, out.read_text() + err.read_text()
            time.sleep(0.05)
        port = int(out.read_text().split("listening on http://127.0.0.1:")[1].split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/score", body=b"{}", headers={"x-request-id": "so-1"})
        assert conn.getresponse().read() == b"1"
        conn.close()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for text in (out.read_text(), log_file.read_text()):
        for line in (
            "azmlinfsrv.print - to stdout 771",
            "azmlinfsrv.print - run printed 773",
            "azmlinfsrv - POST /score 200 ",
            " so-1",
            "Stopped.",
        ):
            assert line in text, text
    assert err.read_text().strip() == "to stderr 772"  # print(file=sys.stderr) is left alone; no log there


def test_model_tree_is_cut_at_200_lines(servers, tmp_path):
    big = tmp_path / "big-model"
    (big / "shards").mkdir(parents=True)
    for i in range(250):
        (big / "shards" / f"part-{i:03d}.bin").write_bytes(b"")
    script = tmp_path / "score.py"
    script.write_text(FAILING["init_raises"][0])
    server = servers.start(script, model_dir=big, expect_ready=False)
    assert server.proc.wait(60) == 3
    lines = server.log().splitlines()
    head = next(i for i, ln in enumerate(lines) if "Model Directory Contents:" in ln)
    tree = [ln.split(" - ", 1)[1] for ln in lines[head + 1 : head + 201]]
    assert tree[:3] == ["big-model/", "    shards/", "        part-000.bin"]
    assert tree[-1] == "        part-197.bin"  # 200 lines: the folder, shards/ and 198 files
    assert lines[head + 201].endswith("Output Truncated. First 200 lines shown.")


def test_sigterm_drain_also_finishes_queued_requests(servers, tmp_path):
    server = servers.start(SCRIPTS / "kitchen.py", "--max-concurrent", "1", "--max-queue", "1")
    started, release = tmp_path / "started", tmp_path / "release"
    results = {}

    def call(key, body):
        threading.Thread(
            target=lambda: results.__setitem__(key, server.call("POST", "/score", body)), daemon=True
        ).start()

    call("running", {"block": {"started": str(started), "release": str(release)}})
    wait_for_file(started)
    call("b", {"ok": 1})
    call("c", {"ok": 1})
    end = time.monotonic() + 20
    while not ("b" in results or "c" in results):  # one waits in the queue, the other is refused
        assert time.monotonic() < end
        time.sleep(0.01)
    queued = "c" if "b" in results else "b"
    assert results["b" if queued == "c" else "c"].status == 429
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.wait_log(r"draining 2 in-flight request\(s\)")
    release.write_text("go")
    assert server.proc.wait(30) == 0
    end = time.monotonic() + 20
    while not ("running" in results and queued in results):
        assert time.monotonic() < end
        time.sleep(0.01)
    assert results["running"].json() == {"ok": True} and results[queued].json() == {"ok": True}


def test_an_installed_azureml_package_does_not_hide_the_stand_ins(servers, tmp_path):
    """A regular azureml/__init__.py on the path (azureml-ai-monitoring installs one: the MLflow examples'
    conda files name it) ends the azureml namespace; the script still imports Azure's AMLResponse from
    azureml.contrib.services, and the installed package's own modules still win."""
    site = tmp_path / "site"
    (site / "azureml" / "ai").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text("# a regular package, as azureml-ai-monitoring's\n")
    (site / "azureml" / "ai" / "__init__.py").write_text("WHO = 'installed'\n")
    script = tmp_path / "score.py"
    script.write_text(
        "import azureml.ai\n"
        "from azureml.contrib.services.aml_response import AMLResponse\n\n"
        "def init():\n    pass\n\n"
        "def run(raw_data):\n"
        "    return AMLResponse(azureml.ai.WHO, 201)\n"
    )
    root = Path(__file__).resolve().parents[2]  # mlctl's package, then the installed one
    server = servers.start(script, env={"PYTHONPATH": f"{root}{os.pathsep}{site}"})
    answer = server.call("POST", "/score", b"x")
    assert (answer.status, answer.body) == (201, b"installed"), server.log()
