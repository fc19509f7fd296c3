"""Ignore files: a code or model folder's .amlignore (else .gitignore) leaves files out of its digest,
as Azure ML leaves them out of the upload; the expectations below were checked against `git add`."""

from __future__ import annotations

from loader_helpers import folder_digest, write_tree

from mlctl.digests import list_files
from mlctl.ignorefile import IgnoreFile, pattern_line
from mlctl.projectpaths import Project
from mlctl.schemas.load import load_config

PATTERNS = """# comment
*.log
!keep.log
data/
/build
docs/*.md
**/tmp/**
a/**/z.txt
\\#hash.txt
[abc]x.txt
[!q]y.txt
notes.txt   
cache
"""
FILES = [
    "x.log",
    "keep.log",
    "sub/keep.log",
    "data/f",
    "sub/data/f",
    "build/f",
    "sub/build/f",
    "docs/a.md",
    "docs/x/a.md",
    "tmp/f",
    "sub/tmp/q/f",
    "a/z.txt",
    "a/b/c/z.txt",
    "#hash.txt",
    "ax.txt",
    "dx.txt",
    "qy.txt",
    "ry.txt",
    "notes.txt",
    "sub/cache/f",
    "cache.txt",
    "main.py",
]
KEPT = ["cache.txt", "docs/x/a.md", "dx.txt", "keep.log", "main.py", "qy.txt", "sub/build/f", "sub/keep.log"]


def test_gitignore_patterns_as_git_reads_them(tmp_path):
    root = write_tree(tmp_path / "code", {**{f: "x\n" for f in FILES}, ".gitignore": PATTERNS})
    excluded = []
    assert list(list_files(root, excluded)) == [".gitignore", *KEPT]
    assert sorted(excluded) == [
        "#hash.txt",
        "a/b/c/z.txt",
        "a/z.txt",
        "ax.txt",
        "build/",
        "data/",
        "docs/a.md",
        "notes.txt",
        "ry.txt",
        "sub/cache/",
        "sub/data/",
        "sub/tmp/q/",
        "tmp/f",
        "x.log",
    ]


def test_amlignore_wins_over_gitignore_and_only_the_root_file_counts(tmp_path):
    root = write_tree(
        tmp_path / "code",
        {
            "score.py": "def run(d): return d\n",
            "data.csv": "1\n",
            "notes.md": "n\n",
            ".gitignore": "*.csv\n",
            ".amlignore": "*.md\n",
            "sub/.gitignore": "*.py\n",
            "sub/util.py": "x = 1\n",
        },
    )
    assert list(list_files(root)) == [
        ".amlignore",
        ".gitignore",
        "data.csv",
        "score.py",
        "sub/.gitignore",
        "sub/util.py",
    ]
    (root / ".amlignore").unlink()
    assert list(list_files(root)) == [".gitignore", "notes.md", "score.py", "sub/.gitignore", "sub/util.py"]


def test_patterns_literal():
    ignore = IgnoreFile.of_lines(["   ", "# x", "/", "!logs/", "/a/**/b*.py", "*.bin", "!keep.bin", "logs/"])
    assert [ignore.excludes(p, False) for p in ("w.bin", "m/w.bin", "keep.bin", "w.txt")] == [True, True, False, False]
    assert [ignore.excludes(p, True) for p in ("logs", "m/logs")] == [True, True]
    assert ignore.excludes("logs", False) is False  # a trailing '/' matches folders only
    assert [ignore.excludes(p, False) for p in ("a/b.py", "a/x/y/b2.py", "m/a/b.py", "a/c.py")] == [
        True,
        True,
        False,
        False,
    ]  # anchored at the folder
    assert IgnoreFile.of_lines(["!logs/", "logs/"]).excludes("logs", True) is True  # the last match decides
    assert IgnoreFile.of_lines(["logs/", "!logs/"]).excludes("logs", True) is False
    assert IgnoreFile(None).excludes("anything", False) is False


def test_a_trailing_double_star_leaves_the_folder_itself_in(tmp_path):
    """`tmp/**` leaves out what tmp/ holds, not tmp/ itself, so `!tmp/keep` re-includes keep (checked
    against `git add`; pathspec alone matches the folder and would prune it)."""
    root = write_tree(
        tmp_path / "code",
        {".gitignore": "tmp/**\n!tmp/keep\n", **{f: "x\n" for f in ("tmp/keep", "tmp/f", "tmp/q/g", "main.py")}},
    )
    excluded = []
    assert list(list_files(root, excluded)) == [".gitignore", "main.py", "tmp/keep"]
    assert sorted(excluded) == ["tmp/f", "tmp/q/"]
    assert pattern_line("tmp/**  ") == "tmp/?*"


def test_an_ignored_file_is_not_part_of_the_deployment(tmp_path):
    """Editing a file the code folder's .amlignore names changes no digest: the plan sees no change."""
    root = write_tree(
        tmp_path / "p",
        {
            "endpoint.yml": "kind: endpoint\nname: ep-one\ntraffic: {blue: 100}\n",
            "blue.yml": "kind: deployment\nname: blue\nendpoint_name: ep-one\nmodel: {path: model/}\n"
            "code_configuration: {code: code/, scoring_script: score.py}\n",
            "model/w.txt": "1\n",
            "model/.gitignore": "checkpoints/\n",
            "model/checkpoints/big.bin": "x\n",
            "code/score.py": "def init(): pass\ndef run(d): return d\n",
            "code/.amlignore": "scratch.ipynb\n",
            "code/scratch.ipynb": "{}\n",
        },
    )

    def load():
        config = load_config(Project.at(root))
        assert not config.errors, [d.format() for d in config.errors]
        return config

    notes = [(d.summary, d.file, d.line, d.field) for d in load().diagnostics if d.severity == "note"]
    assert notes == [
        ("model/ leaves out what its .gitignore names, as Azure ML does: checkpoints/", "blue.yml", 4, "model.path"),
        (
            "code/ leaves out what its .amlignore names, as Azure ML does: scratch.ipynb",
            "blue.yml",
            5,
            "code_configuration.code",
        ),
    ]
    first = load().resource("deployment.ep-one.blue")
    assert set(first.files) == {"code/.amlignore", "code/score.py", "model/.gitignore", "model/w.txt"}
    (root / "code" / "scratch.ipynb").write_text('{"cells": []}\n')
    (root / "model" / "checkpoints" / "big.bin").write_text("y\n")
    second = load().resource("deployment.ep-one.blue")
    assert (second.digest, dict(second.files)) == (first.digest, dict(first.files))
    assert str(root / "code" / "scratch.ipynb") not in load().inputs  # a saved plan does not bind to it either
    digest, _ = folder_digest(root / "code")
    (root / "code" / ".amlignore").unlink()
    assert folder_digest(root / "code")[0] != digest


def test_bracket_expressions_as_git_reads_them(tmp_path):
    """POSIX classes, a leading ']' and a backwards range (which matches nothing); checked against `git add`."""
    root = write_tree(
        tmp_path / "code",
        {
            ".gitignore": "[[:digit:]]*.txt\n[z-a]\n[]]x\n[![:upper:]]9.txt\n",
            **{f: "x\n" for f in ("1a.txt", "9.txt", "A9.txt", "b.txt", "]x", "zz")},
        },
    )
    assert list(list_files(root)) == [".gitignore", "A9.txt", "b.txt", "zz"]
    assert pattern_line("[z-a]") is None
    assert pattern_line("[[:digit:][:upper:]]*\n") == "[0-9A-Z]*"


def test_trailing_spaces_escapes_and_punctuation_classes(tmp_path):
    """An escaped trailing space is kept, \\! matches a leading '!', [:punct:] is ASCII punctuation;
    checked against `git add`."""
    root = write_tree(
        tmp_path / "code",
        {
            ".gitignore": "sp\\ \n\\!bang\n[[:punct:]]p\n",
            **{f: "x\n" for f in ("sp ", "sp", "!bang", "bang", "-p", "_p", "ap")},
        },
    )
    assert list(list_files(root)) == [".gitignore", "ap", "bang", "sp"]
