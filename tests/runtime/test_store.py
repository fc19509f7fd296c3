"""store.py and snapshot.py: Azure's model layout, immutability, code snapshots."""

import os

import pytest

from mlctl.errors import MlctlError
from mlctl.runtime.kit.snapshot import snapshot_code
from mlctl.runtime.kit.store import model_dir, register_model, registered_digest


def test_a_file_lands_directly_inside_a_folder_under_its_name(tmp_path):
    data = tmp_path / ".mlctl"
    f = tmp_path / "model.pkl"
    f.write_bytes(b"weights")
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "w.bin").write_bytes(b"w")
    (d / "__pycache__").mkdir()
    (d / "__pycache__" / "x.pyc").write_bytes(b"c")
    a = register_model(data, "m1", "1", f, "sha256:aa")
    b = register_model(data, "m2", "3", d, "sha256:bb")
    assert a == data / "models" / "azureml-models" / "m1" / "1" == model_dir(data, "m1", "1")
    assert (a / "model.pkl").read_bytes() == b"weights"
    assert (b / "model" / "sub" / "w.bin").read_bytes() == b"w"
    assert not (b / "model" / "__pycache__").exists()
    assert os.stat(a / "model.pkl").st_mode & 0o222 == 0  # read-only once written
    assert os.stat(b / "model").st_mode & 0o222 == 0
    assert registered_digest(data, "m1", "1") == "sha256:aa"


def test_same_content_again_is_a_no_op_other_content_is_an_error(tmp_path):
    data = tmp_path / ".mlctl"
    f = tmp_path / "model.pkl"
    f.write_bytes(b"v1")
    register_model(data, "m", "1", f, "sha256:aa")
    assert register_model(data, "m", "1", f, "sha256:aa") == model_dir(data, "m", "1")
    f.write_bytes(b"v2")
    with pytest.raises(MlctlError) as e:
        register_model(data, "m", "1", f, "sha256:bb")
    assert "Model m:1 is already registered with other content" in str(e.value)
    assert "Bump `version`" in str(e.value)
    assert (model_dir(data, "m", "1") / "model.pkl").read_bytes() == b"v1"


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(MlctlError, match="does not exist"):
        register_model(tmp_path, "m", "1", tmp_path / "nope.pkl", "sha256:aa")


def test_code_snapshot_is_unaffected_by_later_edits(tmp_path):
    code = tmp_path / "src"
    code.mkdir()
    (code / "score.py").write_text("def init(): pass\n")
    (code / ".git").mkdir()
    snap = snapshot_code(tmp_path / ".mlctl", code, "sha256:" + "c" * 64)
    (code / "score.py").write_text("raise SystemExit\n")
    assert (snap / "score.py").read_text() == "def init(): pass\n"
    assert not (snap / ".git").exists()
    assert snapshot_code(tmp_path / ".mlctl", code, "sha256:" + "c" * 64) == snap
    assert os.stat(snap / "score.py").st_mode & 0o222 == 0


def test_what_is_copied_is_exactly_what_is_hashed(tmp_path):
    """Model and code copies hold exactly the files mlctl.digests.list_files lists: same digest."""
    from mlctl.digests import HashCache, list_files

    outside = tmp_path / "shared.txt"
    outside.write_text("linked")
    d = tmp_path / "model"
    for sub in ("a/b", ".git", ".mlctl", "__pycache__", "a/__pycache__"):
        (d / sub).mkdir(parents=True)
    (d / "a" / "b" / "w.bin").write_bytes(b"w")
    (d / "a" / "mod.pyc").write_bytes(b"c")
    (d / ".git" / "HEAD").write_text("ref")
    (d / ".mlctl" / "state.json").write_text("{}")
    (d / "a" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"c")
    (d / ".hidden").write_text("kept")
    (d / "link.txt").symlink_to(outside)
    listed = set(list_files(d))
    assert listed == {"a/b/w.bin", ".hidden", "link.txt"}

    copy = register_model(tmp_path / "data", "m", "1", d, "sha256:aa") / "model"
    snap = snapshot_code(tmp_path / "data", d, "sha256:" + "d" * 64)
    for dest in (copy, snap):
        copied = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
        assert copied == listed
        assert not (dest / "link.txt").is_symlink() and (dest / "link.txt").read_text() == "linked"
        cache = HashCache()
        assert {rel: cache.file_sha256(full) for rel, full in list_files(dest).items()} == {
            rel: cache.file_sha256(full) for rel, full in list_files(d).items()
        }


def test_the_folder_ignore_file_leaves_files_out_of_the_copy(tmp_path):
    """Azure ML's .amlignore (else .gitignore) in a code folder: ignored files are neither hashed nor copied."""
    from mlctl.digests import list_files

    code = tmp_path / "code"
    (code / "data").mkdir(parents=True)
    (code / "score.py").write_text("def init(): pass\n")
    (code / "data" / "big.csv").write_text("1,2\n")
    (code / "notes.tmp").write_text("x")
    (code / ".amlignore").write_text("data/\n*.tmp\n")
    assert set(list_files(code)) == {"score.py", ".amlignore"}
    snap = snapshot_code(tmp_path / "data", code, "sha256:" + "e" * 64)
    assert {str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()} == {"score.py", ".amlignore"}
