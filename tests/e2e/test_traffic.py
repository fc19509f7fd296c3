"""Weighted traffic, the deployment header, a deployment whose init() fails, removing a deployment,
and keys appearing nowhere but `mlctl keys`. Deployments run on mlctl's own interpreter."""

import json
from collections import Counter
from pathlib import Path

from e2e_support import Endpoint, host_pids, keys, mlctl


def who(body: bytes) -> str:
    return json.loads(body)["who"]


def test_split_header_failure_and_removal(split_project):
    p, root = split_project, split_project.root
    outputs = []
    p.write({"blue": 70, "green": 30}, {"blue": {}, "green": {}})
    outputs.append(mlctl(root, "apply", "--auto-approve"))
    key = keys(root, "split")["primaryKey"]
    ep = Endpoint(root, "split")

    counts = Counter()
    for _ in range(500):
        status, body = ep.score(key=key)
        assert status == 200
        counts[who(body)] += 1
    assert abs(counts["blue"] - 350) <= 20 and abs(counts["green"] - 150) <= 20, counts

    for _ in range(20):  # the header reaches the named deployment
        status, body = ep.score(key=key, deployment="green")
        assert status == 200 and who(body) == "green"

    # a deployment whose init() raises is refused; the others keep serving, traffic does not move
    p.write({"blue": 50, "green": 30, "bad": 20}, {"blue": {}, "green": {}, "bad": {"fail": True}})
    failed = mlctl(root, "apply", "--auto-approve", check=False)
    outputs.append(failed)
    assert failed.returncode == 1
    assert "RuntimeError: init failed on purpose in bad" in failed.stderr  # the script's traceback
    assert "Traceback" in failed.stderr
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    assert shown["traffic"] == {"blue": 70, "green": 30}
    assert "bad" not in shown["deployments"] or shown["deployments"]["bad"]["ready_instances"] == 0
    state = json.loads((root / ".mlctl" / "state.json").read_text())
    assert state["resources"]["deployment.split.bad"]["status"] == "failed"
    assert state["pending"] is None
    served = Counter(who(ep.score(key=key)[1]) for _ in range(50))
    assert set(served) == {"blue", "green"}
    retry = mlctl(root, "plan", check=False)  # the next plan retries the failed one
    outputs.append(retry)
    assert "deployment.split.bad" in retry.stdout

    # green takes everything, blue and bad are removed: traffic moves first, then blue is deleted
    p.write({"green": 100}, {"green": {}})
    moved = mlctl(root, "apply", "--auto-approve")
    outputs.append(moved)
    lines = moved.stdout.splitlines()
    traffic_at = next(i for i, line in enumerate(lines) if line.startswith("traffic.split: updating"))
    blue_at = next(i for i, line in enumerate(lines) if line.startswith("deployment.split.blue: deleting"))
    assert traffic_at < blue_at
    shown = json.loads(mlctl(root, "show", "split", "--json").stdout)
    assert set(shown["deployments"]) == {"green"} and shown["traffic"] == {"green": 100}
    assert all(who(ep.score(key=key)[1]) == "green" for _ in range(20))

    # instances run from a code snapshot: editing score.py changes nothing until the next apply
    score = root / "code" / "score.py"
    score.write_text(score.read_text().replace('return {"who": who}', 'return {"who": "edited " + who}'))
    assert all(who(ep.score(key=key)[1]) == "green" for _ in range(10))
    edited = mlctl(root, "plan", "--detailed-exitcode", check=False)
    assert edited.returncode == 2 and "deployment.split.green" in edited.stdout and "score.py" in edited.stdout
    outputs += [edited, mlctl(root, "apply", "--auto-approve")]
    assert all(who(ep.score(key=key)[1]) == "edited green" for _ in range(10))
    ep.close()

    # keys appear nowhere but `mlctl keys`: not in state, backups, plan/apply output, logs, run files
    all_keys = keys(root, "split")
    secrets = [all_keys["primaryKey"], all_keys["secondaryKey"], key]
    texts = [o.stdout + o.stderr for o in outputs]
    texts.append(mlctl(root, "plan", "--json").stdout)
    texts.append(mlctl(root, "show", "split", "--json").stdout)
    for pid in host_pids(root):  # nor in argv or the environment of a process
        for what in ("cmdline", "environ"):
            texts.append(Path(f"/proc/{pid}/{what}").read_bytes().decode("utf-8", "replace"))
    data = root / ".mlctl"
    for f in data.rglob("*"):
        if f.is_file() and "secrets" not in f.parts:
            texts.append(f.read_bytes().decode("utf-8", "replace"))
    assert not [t for t in texts for s in secrets if s in t]
    assert oct(Path(data / "secrets" / "split.json").stat().st_mode & 0o777) == "0o600"
