"""An instance that is not ready within its readiness budget, on a real host: the create fails, its message says
how long the host waited, counted from when the instance was asked of the launcher (a fork server's or a
container's start included), and no instance is left."""

from __future__ import annotations

import re

import pytest

from mlctl.runtime.host.client import HostError

SLOW_INIT = "import time\n\ndef init():\n    time.sleep(120)\n\ndef run(raw_data):\n    return {}\n"


def test_an_instance_not_ready_within_its_budget_fails_saying_how_long_it_was_waited_for(make_host, tmp_path):
    code = tmp_path / "slow"
    code.mkdir()
    (code / "score.py").write_text(SLOW_INIT)
    code.chmod(0o755)  # as root, instances run as their own uid (tests/host/conftest.py)
    host = make_host()
    spec = {
        **host.spec("blue"),
        "code_dir": str(code),
        "readiness_probe": {"initial_delay": 0, "period": 0.5, "timeout": 0.5, "failure_threshold": 4},
    }
    with pytest.raises(HostError) as failed:
        host.client.create_deployment(spec, timeout=120)
    waited = re.search(r"instance 0 of deployment 'blue' was not ready after ([\d.]+)s", failed.value.message)
    assert waited is not None, failed.value.message
    assert float(waited.group(1)) >= 2.0  # the budget: initial_delay + period x failure_threshold
    assert not host.client.status()["deployments"].get("blue", {}).get("instances")
