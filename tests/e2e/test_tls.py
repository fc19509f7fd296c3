"""Endpoints other machines call (issue 27), on the local and the docker runtime: the real CLI applies a project
with `listen:` inside one network namespace and clients call from another (tests/netns.py).

- certificate files + client_ca: a client scores over HTTPS with the certificate verified by name and by
  address; plain HTTP, an untrusted CA and a missing client certificate are refused; /metrics needs a key from
  the other machine; show/list say https:// with the public name; new certificate files under a bounded load
  are an in-place update (0 failed requests, the host's and instances' PIDs unchanged); a host serving another
  certificate than the one applied is drift in `plan --refresh-only`.
- self-signed on `::`: apply prints the project CA, `mlctl invoke` and `mlctl profile` verify with it, a client
  trusting it scores over IPv6 and IPv4.
- refused at plan: beyond loopback without TLS, a key readable by others; warned: a certificate expiring soon.

Each test makes its own CAs and certificates (trustme). Needs root for the namespaces (CI runs as root).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docker"))

from docker_support import containers_of, engine_api  # noqa: E402, F401
from e2e_support import SplitProject, project_processes  # noqa: E402
from netns import Network  # noqa: E402
from tls_support import client_pem, finish_load, in_node, issue, request, start_load  # noqa: E402

NAME = "scoring.example.test"


@pytest.fixture(params=["local", "docker"])
def runtime(request):
    if request.param == "docker":
        request.getfixturevalue("engine_api")  # skips without an engine, fails in CI
    return request.param


@pytest.fixture
def tls_project(tmp_path, runtime):
    """The project; at the end, what the namespaces' removal left (it ends the hosts and local instances in
    them, so no `destroy` is spent): a container, or a process naming the project (killed by PID)."""
    p = SplitProject(tmp_path / "proj", "tlsep")
    p.write({"blue": 100}, {"blue": {"concurrency": 4}})  # the load's 4 clients are never refused with 429
    yield p
    for line in project_processes(p.root):
        try:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    if runtime == "docker":
        from mlctl.runtime.docker import engine

        api = engine.connect().api
        for c in containers_of(api, p.root):
            api.remove_container(c["Id"], force=True)


def project_file(runtime: str, listen: str) -> str:
    return f"runtime: {runtime}\nlisten:\n{listen}"


def pids(root: Path) -> set:
    """The host's and every instance's PID (or container) of endpoint tlsep, from show."""
    shown = json.loads(in_show(root))
    found = {shown["host"]["pid"]}
    for i in shown["deployments"]["blue"]["instances"]:
        found.add(i.get("container") or i["pid"])
    return found


def in_show(root: Path) -> str:
    from e2e_support import mlctl

    return mlctl(root, "show", "tlsep", "--json").stdout


def test_https_with_client_certificates_rotation_and_drift(tls_project, runtime, tmp_path):
    root = tls_project.root
    clients = tmp_path / "clients"
    clients.mkdir()
    with Network(["server", "client"]) as net:
        server, client = net["server"], net["client"]
        ca, client_ca = trustme.CA(), trustme.CA()
        issue(ca, root / "tls", server.address, NAME)
        client_ca.cert_pem.write_to_path(str(root / "tls" / "clients.pem"))
        ca.cert_pem.write_to_path(str(clients / "ca.pem"))
        trustme.CA().cert_pem.write_to_path(str(clients / "other-ca.pem"))
        client_cert = client_pem(client_ca, clients)
        (root / "mlctl.yaml").write_text(
            project_file(
                runtime,
                f"  address: {server.address}\n  public_name: {NAME}\n  client_ca: tls/clients.pem\n"
                "  tls:\n    certificate: tls/server.pem\n    key: tls/server-key.pem\n",
            )
        )
        applied = in_node(server, root, "apply", "--auto-approve")
        port = json.loads(in_show(root))["host"]["port"]
        assert f"https://{NAME}:{port}/score" in applied.stdout
        key = json.loads(in_node(server, root, "keys", "tlsep", "--json").stdout)["primaryKey"]
        good = dict(cafile=str(clients / "ca.pem"), client_cert=str(client_cert), key=key)

        by_name = request(client, server.address, port, name=NAME, **good)
        assert by_name["status"] == 200 and json.loads(by_name["body"])["who"] == "blue", by_name
        by_address = request(client, server.address, port, **good)
        assert by_address["status"] == 200, by_address

        plain = request(client, server.address, port, tls=False, key=key)
        untrusted = request(
            client, server.address, port, name=NAME, **{**good, "cafile": str(clients / "other-ca.pem")}
        )
        no_client_cert = request(client, server.address, port, name=NAME, **{**good, "client_cert": None})
        for refused in (plain, untrusted, no_client_cert):
            assert refused["status"] == 0, refused
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted["error"]
        metrics = request(client, server.address, port, name=NAME, path="/metrics", **{**good, "key": None})
        assert metrics["status"] in (401, 403), metrics
        assert request(client, server.address, port, name=NAME, path="/metrics", **good)["status"] == 200

        (root / "request.json").write_text("{}")
        invoke = ("invoke", "tlsep", "--request-file", "request.json", "--cacert", str(clients / "ca.pem"))
        assert json.loads(in_node(server, root, *invoke, "--cert", str(client_cert)).stdout)["who"] == "blue"
        no_cert = in_node(server, root, *invoke, check=False)
        assert no_cert.returncode == 1 and "--cert FILE" in no_cert.stderr and "Traceback" not in no_cert.stderr

        shown = json.loads(in_show(root))
        assert shown["scoring_uri"] == f"https://{NAME}:{port}/score"
        assert shown["listen"]["tls"] == "files" and shown["listen"]["mutual_tls"] is True
        listed = json.loads(in_node(server, root, "list", "--json").stdout)
        assert listed[0]["scoring_uri"] == f"https://{NAME}:{port}/score"

        # rotation: new files, apply under load -> in place, nobody restarted, no request failed
        before = pids(root)
        stop = tmp_path / "rotated"
        load = start_load(client, server.address, port, name=NAME, stop=stop, **good)
        try:
            issue(ca, root / "tls", server.address, NAME)
            planned = in_node(server, root, "plan")
            assert "~ endpoint" in planned.stdout and "certificate_digest" in planned.stdout
            assert "PRIVATE KEY" not in planned.stdout
            in_node(server, root, "apply", "--auto-approve")
        finally:
            stop.touch()
        result = finish_load(load)
        assert result["failures"] == [] and result["ok"] > 0, result
        assert len(result["seen"]) == 2, result  # both certificates served during the run
        assert pids(root) == before
        assert in_node(server, root, "plan", "--detailed-exitcode", check=False).returncode == 0

        # drift: the host made to serve other files than the ones applied (an outside reload)
        from mlctl.runtime.host.client import HostClient, find_host

        issue(ca, root / "tls", server.address, NAME)
        HostClient(find_host(root / ".mlctl", "tlsep")).reload_tls()
        drift = in_node(server, root, "plan", "--refresh-only", "--detailed-exitcode", check=False)
        assert drift.returncode == 2 and "certificate_digest" in drift.stdout, drift.stdout


def test_self_signed_for_development(tls_project, runtime, tmp_path):
    root = tls_project.root
    with Network(["server", "client"]) as net:
        server, client = net["server"], net["client"]
        (root / "mlctl.yaml").write_text(
            project_file(runtime, f"  address: '::'\n  tls: self-signed\n  public_name: {NAME}\n")
        )
        applied = in_node(server, root, "apply", "--auto-approve")
        ca = root / ".mlctl" / "tls" / "ca.pem"
        assert f"development CA (tls: self-signed): {ca}" in applied.stdout
        key_file = root / ".mlctl" / "tls" / "tlsep-key.pem"
        assert oct(os.stat(key_file).st_mode & 0o777) == "0o600" and key_file.read_text() not in applied.stdout
        (root / "request.json").write_text("{}")
        invoked = in_node(server, root, "invoke", "tlsep", "--request-file", "request.json")
        assert json.loads(invoked.stdout)["who"] == "blue"
        wrong = in_node(
            server,
            root,
            "invoke",
            "tlsep",
            "--request-file",
            "request.json",
            "--cacert",
            str(ca.parent / "tlsep.pem"),
            check=False,
        )
        assert wrong.returncode == 1 and "--cacert" in wrong.stderr and "Traceback" not in wrong.stderr
        if runtime == "docker":
            return  # profile through TLS is the same client on both runtimes: run once
        profiled = in_node(
            server, root, "profile", "tlsep", "--deployment", "blue", "--request-file", "request.json",
            "--concurrency", "1", "--duration", "2s", "--max-requests", "20", "--json",
        )  # fmt: skip
        step = json.loads(profiled.stdout)["steps"][0]  # through TLS, the certificate verified for its name
        assert step["errors"] == 0 and step["requests"] > 0, profiled.stdout
        shown = in_node(server, root, "show", "tlsep").stdout
        assert "listen: ::, tls self-signed" in shown and f"ca_certificate: {ca}" in shown
        port = json.loads(in_show(root))["host"]["port"]
        key = json.loads(in_node(server, root, "keys", "tlsep", "--json").stdout)["primaryKey"]
        for address in (server.address6, server.address):  # `::` takes IPv6 and IPv4 clients
            answer = request(client, address, port, name=NAME, cafile=str(ca), key=key)
            assert answer["status"] == 200, answer


def test_plan_refuses_and_warns(tls_project, runtime, tmp_path):
    from e2e_support import mlctl

    root = tls_project.root
    (root / "mlctl.yaml").write_text(project_file(runtime, "  address: 0.0.0.0\n"))
    refused = mlctl(root, "plan", check=False)
    assert refused.returncode == 1 and "beyond loopback without TLS" in refused.stderr
    assert "mlctl.yaml:3" in refused.stderr and "Traceback" not in refused.stderr

    ca = trustme.CA()
    _, key = issue(ca, root / "tls", "10.213.0.10", NAME, days=12)
    os.chmod(key, 0o644)
    files = "  address: 0.0.0.0\n  tls:\n    certificate: tls/server.pem\n    key: tls/server-key.pem\n"
    (root / "mlctl.yaml").write_text(project_file(runtime, files))
    loose = mlctl(root, "plan", check=False)
    assert loose.returncode == 1 and f"chmod 600 {key}" in loose.stderr

    os.chmod(key, 0o600)
    warned = mlctl(root, "plan", "--refresh=false", check=False)
    assert warned.returncode == 0, warned.stderr
    assert "Warning: the certificate" in warned.stderr and "expires in 1" in warned.stderr
