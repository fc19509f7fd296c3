"""cache.py: listing and pruning virtualenvs, registered models and code snapshots."""

import uuid

from mlctl.runtime.kit import cache
from mlctl.requirements import requirements
from mlctl.runtime.kit.virtualenvs import build_env, env_path
from mlctl.runtime.kit.snapshot import snapshot_code
from mlctl.runtime.kit.store import model_dir, register_model
from mlctl.state.statefile import ResourceState, State


def test_prune_removes_only_what_nothing_uses(env_cache, tmp_path):
    used, unused = ("sha256:" + uuid.uuid4().hex * 2 for _ in range(2))
    for digest in (used, unused):
        build_env(digest, None, requirements([], ["six"]))
    data = tmp_path / ".mlctl"
    (tmp_path / "m.pkl").write_bytes(b"m")
    register_model(data, "keep", "1", tmp_path / "m.pkl", "sha256:aa")
    register_model(data, "old", "1", tmp_path / "m.pkl", "sha256:aa")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("x = 1\n")
    snap = snapshot_code(data, tmp_path / "code", "sha256:" + "d" * 64)
    state = State(
        resources={
            "image.e": ResourceState("image", {"spec_digest": used}, "x"),
            "model.keep": ResourceState("model", {"name": "keep", "version": "1"}, "x"),
        }
    )
    items = cache.entries(data, state)
    by_path = {e.path: e for e in items}
    assert by_path[str(env_path(used))].in_use and not by_path[str(env_path(unused))].in_use
    assert "python" in by_path[str(env_path(used))].detail
    doomed = cache.prunable(items, older_than=0)
    assert {e.path for e in doomed} >= {str(env_path(unused)), str(model_dir(data, "old", "1")), str(snap)}
    assert str(env_path(used)) not in {e.path for e in doomed}
    assert str(model_dir(data, "keep", "1")) not in {e.path for e in doomed}
    recent = cache.prunable(items, older_than=3600)  # envs used within the hour are kept
    assert str(env_path(unused)) not in {e.path for e in recent}
    packed = env_path(unused).parent.parent / "ray-packages"  # the ray runtime's zips of each (packages.py)
    packed.mkdir()
    for digest in (used, unused):
        (packed / f"env-{env_path(digest).name}-1.zip").write_bytes(b"zip")
    for e in doomed:
        assert cache.remove(e)
    assert not env_path(unused).exists() and env_path(used).exists()
    assert sorted(p.name for p in packed.iterdir()) == [f"env-{env_path(used).name}-1.zip"]
    assert not model_dir(data, "old", "1").exists() and model_dir(data, "keep", "1").exists()
    assert not snap.exists()


def test_prune_keeps_a_virtualenv_a_process_still_runs_from(env_cache, tmp_path):
    """Another project's instances may run for weeks without a refresh: their virtualenv stays."""
    import subprocess

    from mlctl.runtime.kit.virtualenvs import read_built

    digest = "sha256:" + uuid.uuid4().hex * 2
    build_env(digest, None, requirements([], ["six"]))
    proc = subprocess.Popen(
        [read_built(digest).python_executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        [entry] = [e for e in cache.entries(tmp_path, State()) if e.path == str(env_path(digest))]
        assert cache.prunable([entry], older_than=0) == [entry]
        assert cache.running_from(env_path(digest)) == [proc.pid]
        assert not cache.remove(entry) and env_path(digest).exists()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert cache.running_from(env_path(digest)) == []
    assert cache.remove(entry) and not env_path(digest).exists()
