"""Moving a state document between stores: `mlctl state push FILE` and `mlctl state migrate`.

Both check lineage and serial as every write does: a document of another lineage is never written over
another's state, and one older than the store's is refused (push --force overrides the serial check).
Each returns the sentence the command prints; the writes go through mlctl.state.statefile.write_state.
"""

from __future__ import annotations

from pathlib import Path

from mlctl.errors import Diagnostic, MlctlError
from mlctl.state.statefile import State, encode, parse_document, read_state, write_state

MAX_DOCUMENT = 256 * 1024 * 1024


def _put(target, document: State, current: State) -> State:
    """Write `document` into `target` as serial max(document's, current's + 1), conditional on `current`."""
    document.serial = max(document.serial, current.serial + 1) - 1
    document.etag = current.etag
    return write_state(target, document)


def _exists(state: State) -> bool:
    return state.etag is not None


def push_document(backend, file: str, *, force: bool = False) -> str:
    path = Path(file)
    try:
        if path.stat().st_size > MAX_DOCUMENT:
            raise MlctlError(Diagnostic(f"{file} is larger than a state document can be", file=file))
        pushed = parse_document(file, path.read_bytes())
    except OSError as e:
        raise MlctlError(Diagnostic(f"cannot read {file}: {e.strerror or e}", file=file)) from None
    current = read_state(backend)
    if _exists(current):
        if current.lineage != pushed.lineage:
            raise MlctlError(
                Diagnostic(
                    f"{file} is of lineage {pushed.lineage}; the state in {backend.where} is of {current.lineage}",
                    "It is another project's state: nothing was written.",
                    file=file,
                )
            )
        if current.serial == pushed.serial and encode(current) == encode(pushed):
            return f"{backend.where} already holds serial {current.serial}: nothing to push."
        if current.serial >= pushed.serial and not force:
            raise MlctlError(
                Diagnostic(
                    f"{backend.where} holds serial {current.serial}; {file} has serial {pushed.serial}",
                    "The store was written after this file: pushing it would lose those writes; nothing was "
                    "written. `mlctl state pull` shows what the store holds; --force pushes anyway.",
                    file=file,
                )
            )
    written = _put(backend, pushed, current)
    return f"Pushed {file} to {backend.where} (serial {written.serial}, lineage {written.lineage})."


def migrate_state(project, *, lock_timeout: float = 0) -> str:
    from mlctl.state.backends import backend_from, configured, record, recorded

    target = configured(project)
    before = recorded(project)
    if before is None or dict(before) == dict(target.config):
        record(project, target)
        return f"Nothing to migrate: the state is in {target.where}."
    source = backend_from(project, before)
    with source.lock("state migrate", timeout=lock_timeout), target.lock("state migrate", timeout=lock_timeout):
        src = read_state(source)
        dst = read_state(target)
        if not _exists(src):
            said = f"Nothing recorded in {source.where}"
        elif _exists(dst) and dst.lineage != src.lineage:
            raise MlctlError(
                Diagnostic(
                    f"{target.where} holds a state of another lineage ({dst.lineage}, not {src.lineage})",
                    "It is another project's state: nothing was copied. Choose another 'name' in the state: block.",
                    field="state",
                )
            )
        elif _exists(dst) and dst.serial >= src.serial:
            said = f"{target.where} already holds serial {dst.serial} of this state"
        else:
            written = _put(target, src, dst)
            said = f"Copied serial {written.serial} (lineage {written.lineage}) from {source.where}"
        record(project, target)
    return f"{said}; the state is now in {target.where}."
