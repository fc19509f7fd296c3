"""Apply's progress where there is no terminal (here: captured output), on the fake runtime with slow
orders: a `still ...` line per interval with the elapsed seconds, the result, whole lines only,
secrets masked, and no progress thread left when apply returns (also when an order fails)."""

from __future__ import annotations

import re
import threading

import pytest
from contract_harness import Harness

from mlctl.cli import main


@pytest.fixture
def slow(tmp_path, world, monkeypatch):
    monkeypatch.setenv("MLCTL_PROGRESS_INTERVAL", "1")
    h = Harness(tmp_path / "proj", "fake")
    h.world = world
    return h


def apply(h, capsys) -> tuple[int, list[str], str]:
    code = main(["-C", str(h.project.root), "--runtime", "fake", "apply", "--auto-approve"])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def progress_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "mlctl-progress"]


LINE = re.compile(r"^(\S+: .+|Apply complete! .+|  endpoint\.\S+: .*|)$")


def test_slow_orders_show_still_lines_then_the_result_and_leave_no_thread(slow, capsys):
    slow.write(blue={"count": 1})
    slow.world.delay[("deployment.ctr.blue", "create")] = 2.5
    slow.world.say[("deployment.ctr.blue", "create")] = (
        "starting 1 instance(s) with https://deployer:hunter2@registry.example/simple and ghp_" + "a" * 30
    )
    code, lines, _ = apply(slow, capsys)
    assert code == 0
    body = lines[lines.index("deployment.ctr.blue: creating...") :]
    assert body[1] == (
        "deployment.ctr.blue: starting 1 instance(s) with https://deployer:***@registry.example/simple and (sensitive)"
    )
    still = [line for line in body if "still" in line]
    assert still[:2] == [
        "deployment.ctr.blue: still creating (1s elapsed)",
        "deployment.ctr.blue: still creating (2s elapsed)",
    ], body
    assert all(re.fullmatch(r"deployment\.ctr\.blue: still creating \(\d+s elapsed\)", line) for line in still)
    done = next(i for i, line in enumerate(body) if line.startswith("deployment.ctr.blue: done ("))
    assert done > body.index(still[-1])  # the result comes after the last still line
    assert not any("still" in line for line in body[done:])  # and the ticker stopped with the order
    assert any(line.startswith("Apply complete!") for line in lines)
    assert all(LINE.match(line) for line in lines[lines.index("model.ctr-blue-model: creating...") :]), lines
    assert "hunter2" not in "\n".join(lines) and progress_threads() == []

    slow.write(blue={"count": 1, "concurrency": 4})  # a roll: the deployment is rolling out
    slow.world.delay[("deployment.ctr.blue", "roll")] = 1.5
    code, lines, _ = apply(slow, capsys)
    assert code == 0 and "deployment.ctr.blue: still rolling out (1s elapsed)" in lines
    assert progress_threads() == []


def test_a_failing_slow_order_ends_with_failed_and_no_thread(slow, capsys):
    from mlctl.runtime.contract import DriverError

    slow.write(blue={"count": 1})
    slow.world.delay[("endpoint.ctr", "create")] = 1.5
    slow.world.fail[("endpoint.ctr", "create")] = DriverError("port taken on purpose")
    code, lines, err = apply(slow, capsys)
    assert code == 1 and "endpoint.ctr: still creating (1s elapsed)" in lines
    assert "endpoint.ctr: FAILED: port taken on purpose" in err
    assert progress_threads() == []
