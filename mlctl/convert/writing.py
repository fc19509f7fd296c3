"""Writing a conversion's files all or nothing: every file and folder is first written into a
staging folder beside them, then renamed into place; nothing is overwritten unless `force`."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError


def existing(out: Path, texts: dict[str, str], trees: dict[str, list]) -> list[str]:
    """The files and folders a write would replace (names relative to `out`), in order."""
    return [n for n in [*texts, *trees] if os.path.lexists(out / n)]


def write_all(
    out: Path, texts: dict[str, str], trees: dict[str, list[tuple[Path, str]]], *, force: bool = False
) -> list[str]:
    """Write `texts` ({relative file: text}) and `trees` ({relative folder: [(source file, path
    inside)]}) into `out`; returns the names written. MlctlError, with nothing written, when one
    exists and not `force`, or when staging fails (the staging folder is removed)."""
    clash = existing(out, texts, trees)
    if clash and not force:
        raise MlctlError(
            Diagnostic(
                f"not overwriting {', '.join(clash)} in {out}",
                "Nothing was written. Pass --force to replace them, or --out DIR to write elsewhere.",
                file=str(out / clash[0]),
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".mlctl-convert-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        for name, text in texts.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)
        for folder, files in trees.items():
            for source, inside in files:
                (stage / folder / inside).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, stage / folder / inside)
        _move_into_place(stage, out, [*texts, *trees])
    except OSError as e:
        raise MlctlError(
            Diagnostic(
                f"cannot write the converted files into {out}: {e.strerror or e}",
                "Check that the folder is writable and has room; nothing was replaced.",
                file=str(out),
            )
        ) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [*texts, *trees]


def _move_into_place(stage: Path, out: Path, names: list[str]) -> None:
    """Rename each staged entry over its destination (a replaced folder is moved aside into the
    staging folder first, and removed with it)."""
    for i, name in enumerate(names):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            os.rename(target, stage / f".replaced-{i}")
        os.replace(stage / name, target)
