"""resources on the ray runtime, on the ray tests' real cluster: a replica's placement reserves the deployment's
resources.requests, so a request no alive node can hold is a plan error naming the largest node's amount."""

from __future__ import annotations

import pytest
from e2e_support import SplitProject, cleanup, mlctl

pytestmark = pytest.mark.ray


def test_a_request_beyond_every_node_is_a_plan_error_naming_the_largest(tmp_path, ray_cluster):
    p = SplitProject(tmp_path / "proj", "sized")
    (p.root / "mlctl.yaml").write_text(f'runtime: ray\nray:\n  address: "{ray_cluster.address}"\n')
    p.write({"blue": 100}, {"blue": {}})
    deployment = p.root / "deploy-blue.yml"
    deployment.write_text(deployment.read_text() + "resources:\n  requests:\n    cpu: 4096\n  limits:\n    cpu: 8192\n")
    try:
        out = mlctl(p.root, "plan", check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert (
            "deployment.sized.blue: resources.requests.cpu (4096 CPUs) is more than the Ray cluster's largest node "
            "can give one instance on the ray runtime: at most" in out.stderr
        )
        assert "limits.cpu" not in out.stderr  # Ray places by requests and enforces no limit
    finally:
        cleanup(p.root)
