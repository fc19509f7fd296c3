"""The boundary of a project: the folder whose files its configuration may name and its links may reach.

It is the git work tree that holds the project folder (the nearest folder at or above it with a `.git`,
found without running git: a repository's git config is not to be trusted), else the project folder itself
(`-C`). So Azure's examples, whose deployments name `../model-1/model/`, work inside their repository, while
a model path, a code folder or a symbolic link that reaches outside (`model/leak -> ~/.ssh`,
`model/root -> /`) is a validate error: `plan` runs on pull requests, and must read nothing of the runner.
"""

from __future__ import annotations

import os


def project_boundary(root: str | os.PathLike) -> str:
    """The real path of the boundary of the project in folder `root` (reads the file system, runs nothing)."""
    folder = os.path.realpath(root)
    here = folder
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return folder
        here = parent


def is_inside(real: str | os.PathLike, boundary: str) -> bool:
    """Pure: is the real path `real` the boundary or under it?"""
    real = os.fspath(real)
    return real == boundary or real.startswith(boundary.rstrip("/") + "/")


def describe(boundary: str) -> str:
    """Pure: the boundary as messages name it."""
    git = os.path.lexists(os.path.join(boundary, ".git"))
    return f"{boundary} (the git work tree holding the project)" if git else f"{boundary} (the project folder)"
