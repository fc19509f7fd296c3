"""The document cache (.mlctl/documents.json) never makes a plan stale: after an edit, a `git checkout`, a
touched file with the same content and a hostile cache file, `mlctl plan` (a real CLI process) prints what
it prints with no cache at all (a run whose cache key is another user's, so it reads no entry)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path

import pytest

from goldens import HERE, copy_project, two_branches
from goldens import cli as mlctl

from mlctl import digests
from test_plan_memo import plant

CACHE = Path(".mlctl") / "documents.json"


class Planner:
    """`mlctl plan --json` with this user's cache key, and the same plan with no usable cache to compare."""

    def __init__(self, root: Path, tmp: Path):
        self.root, self.user, self.stranger = root, tmp / "xdg-user", tmp / "xdg-stranger"

    def plan(self, xdg: Path | None = None) -> dict:
        r = mlctl(self.root, xdg or self.user, "plan", "--refresh=false", "--json")
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        return json.loads(r.stdout)

    def uncached(self) -> dict:
        """The plan from a run that cannot use the cache (another key); the user's cache file is put back."""
        cache = self.root / CACHE
        saved = cache.read_bytes() if cache.is_file() else None
        out = self.plan(self.stranger)
        if saved is not None:
            cache.write_bytes(saved)
        return out

    def check(self) -> dict:
        cached = self.plan()
        assert cached == self.uncached()
        return cached


def deployment(plan: dict, name: str) -> dict:
    return next(c for c in plan["resource_changes"] if c["address"] == f"deployment.shop.{name}")


def entries(root: Path) -> dict:
    signature, _, payload = (root / CACHE).read_bytes().partition(b"\n")
    return json.loads(payload)["documents"]


@pytest.fixture
def planner(tmp_path):
    root = copy_project(HERE / "_project", tmp_path / "project")
    return Planner(root, tmp_path)


def test_a_second_plan_reads_the_cache_and_an_edit_is_seen(planner):
    first = planner.check()
    assert (planner.root / CACHE).is_file() and len(entries(planner.root)) >= 4
    before = (planner.root / CACHE).stat().st_mtime_ns
    assert planner.plan() == first
    assert (planner.root / CACHE).stat().st_mtime_ns == before  # nothing new to write: every file was a hit
    blue = planner.root / "blue.yml"
    blue.write_text(blue.read_text().replace("instance_count: 1", "instance_count: 3"))
    edited = planner.check()
    assert deployment(edited, "blue")["after"]["instance_count"] == 3
    assert deployment(first, "blue")["after"]["instance_count"] == 1
    blue.write_text(blue.read_text().replace("instance_count: 3", "instance_count: 1"))  # back: the old entry again
    assert planner.check() == first


def _green_five(root: Path) -> None:
    (root / "green.yml").write_text((root / "green.yml").read_text().replace("instance_count: 1", "instance_count: 5"))


def test_git_checkout_of_another_version_is_planned_from_its_files(planner):
    root = planner.root
    git = two_branches(root, _green_five)
    on_other = planner.check()
    subprocess.run([*git, "checkout", "-q", "main"], check=True)  # same size, maybe the same second
    on_main = planner.check()
    subprocess.run([*git, "checkout", "-q", "other"], check=True)
    assert planner.check() == on_other
    assert deployment(on_other, "green")["after"]["instance_count"] == 5
    assert deployment(on_main, "green")["after"]["instance_count"] != 5


def test_a_touched_file_with_the_same_content_plans_the_same(planner):
    first = planner.check()
    for f in planner.root.glob("*.yml"):
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    assert planner.check() == first


def forged(root: Path, key: bytes, data_for: dict, *, context: str | None = None) -> bytes:
    """A cache file claiming other data for the project's real files, signed with `key`."""
    docs = {}
    for name, data in data_for.items():
        text = (root / name).read_bytes()
        docs[hashlib.sha256(text).hexdigest()] = [data, [[["name"], 2]]]
    if context is None:
        from mlctl.schemas.doccache import _context

        context = _context()
    payload = json.dumps({"context": context, "documents": docs}, separators=(",", ":")).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload


LIE = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
    "name": "blue",
    "endpoint_name": "shop",
    "model": "azureml:fraud:1",
    "code_configuration": {"code": "code/", "scoring_script": "score.py"},
    "environment": "azureml:other:1",
    "instance_count": 9,
}


@pytest.mark.parametrize(
    "hostile",
    ["foreign-key", "unsigned", "garbage", "link", "fifo", "huge", "folder"],
)
def test_a_hostile_cache_file_is_never_believed(planner, tmp_path, hostile):
    expected = planner.uncached()
    cache = planner.root / CACHE
    cache.parent.mkdir(exist_ok=True)
    outside = tmp_path / "outside.json"
    plant(cache, hostile, forged(planner.root, b"k" * 32, {"blue.yml": LIE}), outside)  # (test_plan_memo's)
    got = planner.plan()
    assert got == expected
    assert deployment(got, "blue")["after"]["instance_count"] == 1
    if hostile == "link":
        assert json.loads(outside.read_bytes().partition(b"\n")[2])["documents"]  # untouched, not followed
        assert cache.is_symlink()


def test_a_cache_signed_with_the_users_key_for_another_parser_is_rebuilt(planner):
    planner.check()  # makes the user's key
    key = (planner.user / "mlctl" / "cache.key").read_bytes()
    (planner.root / CACHE).write_bytes(forged(planner.root, key, {"blue.yml": LIE}, context="0|old"))
    assert deployment(planner.plan(), "blue")["after"]["instance_count"] == 1


def test_without_a_writable_cache_folder_plans_are_the_same(planner, tmp_path):
    expected = planner.uncached()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    assert planner.plan(blocked) == expected
    assert planner.plan(blocked) == expected


@pytest.mark.parametrize("hostile", ["unsigned", "foreign-key"])
def test_a_committed_file_hash_cache_cannot_hide_an_edited_script(planner, hostile):
    """`.mlctl/hashcache.json` (file digests by path, size and mtime) as a pull request could commit it: it claims
    that the edited score.py still has its old digest. Only a cache this user's mlctl signed is believed."""
    root = planner.root
    script = next((root / "code").rglob("*.py"))
    old_digest = hashlib.sha256(script.read_bytes()).hexdigest()
    before = planner.check()
    script.write_text(script.read_text() + "\n# edited in the pull request\n")
    st = script.stat()
    os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns - 10_000_000_000))  # not racily clean: a cache is believed
    st = script.stat()
    entry = [st.st_size, st.st_mtime_ns, old_digest, st.st_mtime_ns + 20_000_000_000]
    payload = json.dumps({"format": digests.CACHE_FORMAT, "files": {str(script): entry}}).encode()
    if hostile == "foreign-key":
        payload = hmac.new(b"k" * 32, payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload
    (root / ".mlctl" / "hashcache.json").write_bytes(payload)
    after = planner.plan()
    assert deployment(after, "blue")["after"]["code_digest"] != deployment(before, "blue")["after"]["code_digest"]
