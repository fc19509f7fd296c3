"""Digests: literal expectations for files and folders, what they skip, and the (size, mtime) hash cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

from mlctl import signedfiles
from mlctl.digests import HashCache, json_digest, merkle_digest

from loader_helpers import age, folder_digest, write_tree

TREE = {
    "a.txt": b"alpha\n",
    "sub/b.txt": b"beta\n",
    ".git/HEAD": b"ref: refs/heads/main\n",
    "__pycache__/m.cpython-311.pyc": b"\x00compiled",
    "sub/c.pyc": b"\x00compiled",
    ".mlctl/state.json": b"{}",
    "sub/.mlctl/hashcache.json": b"{}",
}
ALPHA = "b6a98d9ce9a2d9149288fa3df42d377c3e42737afdcdaf714e33c0a100b51060"  # sha256 of b"alpha\n"
BETA = "f2c82decdd7181cf98945929a62598db7e6b477e11f6e0eb0ae97020eff151ad"  # sha256 of b"beta\n"
TREE_DIGEST = "sha256:a3338c328701eec0ab2aadb60025f8bc97d9a3009b823432554cc1f2aebb5435"


def test_known_tree_has_known_digest_and_skips_tool_folders(tmp_path):
    root = write_tree(tmp_path / "t", TREE)
    digest, files = folder_digest(root)
    assert files == {"a.txt": ALPHA, "sub/b.txt": BETA}
    assert digest == TREE_DIGEST


def test_digest_is_the_hash_of_sorted_path_and_file_hash_lines():
    expected = hashlib.sha256(f"a.txt\0{ALPHA}\nsub/b.txt\0{BETA}\n".encode()).hexdigest()
    assert merkle_digest({"sub/b.txt": BETA, "a.txt": ALPHA}) == "sha256:" + expected == TREE_DIGEST
    rooted = hashlib.sha256(f"model/a.txt\0{ALPHA}\n".encode()).hexdigest()
    assert merkle_digest({"a.txt": ALPHA}, root_name="model") == "sha256:" + rooted


def test_single_file_digest_names_the_file():
    assert merkle_digest({"a.txt": ALPHA}) == "sha256:e194db447df1acfc07e94a18c65cb878450f324b326b86cb012eb418f5a0b0a8"


def test_single_file(tmp_path):
    write_tree(tmp_path, {"a.txt": b"alpha\n"})
    assert folder_digest(tmp_path / "a.txt") == (
        "sha256:e194db447df1acfc07e94a18c65cb878450f324b326b86cb012eb418f5a0b0a8",
        {"a.txt": ALPHA},
    )


def test_location_and_mtime_do_not_matter_content_and_names_do(tmp_path):
    a = write_tree(tmp_path / "one" / "t", TREE)
    b = tmp_path / "elsewhere" / "deeper" / "t"
    shutil.copytree(a, b)
    age(b, 1000)
    assert folder_digest(a)[0] == folder_digest(b)[0] == TREE_DIGEST
    (b / "sub" / "b.txt").write_bytes(b"beta!\n")
    assert folder_digest(b)[0] != TREE_DIGEST
    (b / "sub" / "b.txt").write_bytes(b"beta\n")
    (b / "sub" / "b.txt").rename(b / "sub" / "b2.txt")
    assert folder_digest(b)[0] != TREE_DIGEST


def test_json_digest_is_canonical():
    assert json_digest({"b": 1, "a": [1, "x"]}) == json_digest({"a": [1, "x"], "b": 1})
    assert json_digest({"a": 1}) == "sha256:" + hashlib.sha256(b'{"a":1}').hexdigest()


def test_cache_answers_unchanged_files_without_reading_them(tmp_path):
    root = write_tree(tmp_path / "t", TREE)
    age(root)
    cache_file = tmp_path / "hashcache.json"
    first = HashCache.load(cache_file)
    folder_digest(root, first)
    assert (first.computed, first.hits) == (2, 0)
    first.save()

    second = HashCache.load(cache_file)
    assert folder_digest(root, second)[0] == TREE_DIGEST
    assert (second.computed, second.hits) == (0, 2)

    # Proof that nothing is read: a poisoned entry (same size and mtime) signed with this user's key is believed;
    # the same entry as a repository could commit it (unsigned, or signed by another key) is not.
    doc = json.loads(cache_file.read_bytes().partition(b"\n")[2])
    doc["files"][str(root / "a.txt")][2] = "0" * 64
    forged = json.dumps(doc).encode()
    for foreign in (forged, signedfiles.sign(b"k" * 32, forged), b"\n" + forged):
        cache_file.write_bytes(foreign)
        assert folder_digest(root, HashCache.load(cache_file))[1]["a.txt"] == ALPHA
    cache_file.write_bytes(signedfiles.sign(signedfiles.user_key() or b"", forged))
    assert folder_digest(root, HashCache.load(cache_file))[1]["a.txt"] == "0" * 64

    # A changed file (new size / mtime) is read again, and only that one.
    (root / "sub" / "b.txt").write_bytes(b"BETA\n")
    age(root / "sub")
    third = HashCache.load(cache_file)
    digest, files = folder_digest(root, third)
    assert third.computed_paths == [str(root / "sub" / "b.txt")]
    assert files["sub/b.txt"] == hashlib.sha256(b"BETA\n").hexdigest()


def test_recently_modified_files_are_hashed_again(tmp_path):
    """A file changed within a second of being hashed could change again with the same mtime: not trusted."""
    root = write_tree(tmp_path / "t", {"a.txt": b"alpha\n"})
    cache = HashCache.load(tmp_path / "c.json")
    folder_digest(root, cache)
    cache.save()
    again = HashCache.load(tmp_path / "c.json")
    folder_digest(root, again)
    assert again.computed == 1


def test_unreadable_or_foreign_cache_file_is_an_empty_cache(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    assert HashCache.load(tmp_path / "c.json").entries == {}
    (tmp_path / "c.json").write_text(json.dumps({"format": 99, "files": {"x": [1, 2, "3", 4]}}))
    assert HashCache.load(tmp_path / "c.json").entries == {}
    assert HashCache.load(tmp_path / "missing.json").entries == {}
    assert not os.path.exists(tmp_path / "missing.json")


def test_symbolic_links_are_followed_once(tmp_path):
    shared = write_tree(tmp_path / "shared", {"util.py": b"x = 1\n"})
    root = write_tree(tmp_path / "code", {"score.py": b"pass\n"})
    (root / "lib").symlink_to(shared, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "alias.py").symlink_to(root / "score.py")
    _, files = folder_digest(root)
    assert sorted(files) == ["alias.py", "lib/util.py", "score.py"]
    before = folder_digest(root)[0]
    (shared / "util.py").write_bytes(b"x = 2\n")
    assert folder_digest(root)[0] != before


def test_the_cache_is_kept_in_a_data_folder_that_does_not_exist_yet(tmp_path):
    root = write_tree(tmp_path / "t", TREE)
    age(root)
    cache = HashCache.load(tmp_path / "data" / "hashcache.json")
    folder_digest(root, cache)
    cache.save()
    again = HashCache.load(tmp_path / "data" / "hashcache.json")
    folder_digest(root, again)
    assert (again.computed, again.hits) == (0, 2)
