"""Start a corpus case from a repository snapshot (a maintainer's tool; tests never fetch).

    python tests/corpus/add_case.py NAME GIT_DIR REPOSITORY COMMIT PATH [PATH ...]

GIT_DIR is a clone or mirror (e.g. the one `fetch` brings); each PATH is copied from COMMIT, unchanged, to
`cases/NAME/files/PATH`, the repository's LICENSE at that commit to `cases/NAME/LICENSE`, and a `case.yml`
is started with the provenance filled in and the fields to complete (tests/corpus/README.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

CASES = Path(__file__).resolve().parent / "cases"


def show(git_dir: str, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", git_dir, "show", f"{commit}:{path}"], capture_output=True, check=True).stdout


def main(argv: list[str]) -> int:
    name, git_dir, repository, commit, *paths = argv
    commit = subprocess.run(
        ["git", "-C", git_dir, "rev-parse", commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    case = CASES / name
    for path in paths:
        target = case / "files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(show(git_dir, commit, path))
    (case / "LICENSE").write_bytes(show(git_dir, commit, "LICENSE"))
    if not (case / "case.yml").exists():
        source = {"repository": repository, "commit": commit, "license": "LICENSE", "files": paths}
        text = yaml.safe_dump({"source": source}, sort_keys=False)
        text += "project: TODO\nconfig: []\ninvoke: []\n"
        (case / "case.yml").write_text(text)
    print(f"wrote {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
