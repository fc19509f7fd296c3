"""Code snapshots: a deployment's code folder copied to `DATA/code/<digest>/` at apply.

Instances run from the snapshot, so editing score.py after apply changes nothing until the next
apply. A snapshot is content-addressed by the code digest, written once (copied beside, renamed
into place) and its files made read-only (folders stay writable so Python can cache bytecode).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.privatefiles import ensure_folder
from mlctl.runtime.kit.store import copy_tree, make_read_only, remove_read_only


def code_root(data_dir) -> Path:
    return Path(data_dir) / "code"


def snapshot_path(data_dir, code_digest: str) -> Path:
    return code_root(data_dir) / code_digest.split(":", 1)[-1][:24]


def snapshot_code(data_dir, source, code_digest: str) -> Path:
    """Copy the code folder `source` to its snapshot (once per digest) and return the snapshot folder."""
    final = snapshot_path(data_dir, code_digest)
    if final.is_dir():
        return final
    source = Path(source)
    if not source.is_dir():
        raise MlctlError(
            Diagnostic(
                f"The code folder {source} does not exist", "Fix `code_configuration.code` in the deployment's YAML."
            )
        )
    ensure_folder(final.parent, what="code snapshots", base=data_dir)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    remove_read_only(tmp)
    copy_tree(source, tmp)
    make_read_only(tmp, dirs_too=False)
    try:
        os.rename(tmp, final)
    except OSError:  # another apply wrote the same snapshot first
        remove_read_only(tmp)
    return final
