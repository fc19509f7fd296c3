"""Which modules a deployment's fork server imports before forking its instances, found without running
user code: the top-level import statements of the scoring script (read with `ast`, never executed) and the
modules a pickled or joblib model names (its GLOBAL and STACK_GLOBAL opcodes, read with `pickletools.genops`,
never unpickled).

Names the deployment's own code folder provides (`utils.py` beside score.py) are left out: the instance imports
those from its code, which the fork server does not see. Everything is bounded: files, bytes and names read.
"""

from __future__ import annotations

import ast
import os
import pickletools
import re
from pathlib import Path

MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav", ".pck")
MAX_SCRIPT_BYTES = 1 << 20
MAX_MODEL_FILES = 20
MAX_MODEL_BYTES = 16 << 20  # read of each model file: its first 16 MiB (a pickle names its classes first)
MAX_NAMES = 200
MAX_OPCODES = 200_000
SKIPPED = ("__main__", "__future__", "entry_module", "builtins", "copyreg", "azureml")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def script_imports(source: str) -> list[str]:
    """Pure: the modules the script's top-level statements import (`import a.b`, `from a.b import c`; not
    relative imports, not imports inside functions, `if` or `try` blocks), in order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def pickle_modules(data: bytes) -> list[str]:
    """Pure: the modules the pickle stream `data` names in GLOBAL and STACK_GLOBAL opcodes (a STACK_GLOBAL's
    module is the string pushed, or fetched from the memo, two before it), up to the first opcode it cannot read."""
    names: list[str] = []
    pushed: list = []  # what each opcode pushed, as far as it matters here: a string, else None
    memo: dict = {}
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            if count > MAX_OPCODES:
                break
            if op.name == "GLOBAL" and isinstance(arg, str):
                names.append(arg.split(" ", 1)[0])
            elif op.name == "STACK_GLOBAL":
                if len(pushed) >= 2 and isinstance(pushed[-2], str):
                    names.append(pushed[-2])
                pushed[-2:] = [None]
                continue
            if op.name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = pushed[-1] if pushed else None
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                pushed.append(memo.get(arg))
            elif op.name not in ("FRAME", "PROTO"):
                pushed.append(arg if isinstance(arg, str) and "UNICODE" in op.name else None)
            del pushed[:-4]
    except Exception:  # noqa: BLE001 - a joblib file's raw arrays, compression, truncation: keep what was read
        pass
    return names


def model_files(model_dir: Path) -> list[Path]:
    """The pickled model files under `model_dir` (not following symbolic links), at most MAX_MODEL_FILES."""
    found: list[Path] = []
    for root, dirs, files in os.walk(model_dir, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if name.lower().endswith(MODEL_SUFFIXES) and not path.is_symlink():
                found.append(path)
                if len(found) >= MAX_MODEL_FILES:
                    return found
    return found


def own_modules(code_dir: Path, script: Path) -> set[str]:
    """The top-level module names the deployment's code provides (beside its script and at its code root)."""
    names = set()
    for folder in {code_dir, script.parent}:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            stem = entry.name[:-3] if entry.name.endswith(".py") else entry.name
            if entry.name.endswith(".py") or entry.is_dir(follow_symlinks=False):
                names.add(stem)
    return names


def modules_to_preload(code_dir: str, scoring_script: str, model_dir: str) -> list[str]:
    """The modules a fork server imports for this deployment, deduplicated, in order: the script's, then the
    model's. Reads the script and the model files (bounded); a file it cannot read adds nothing."""
    code = Path(code_dir)
    script = code / scoring_script
    names: list[str] = []
    try:
        if script.is_file() and not script.is_symlink() and script.stat().st_size <= MAX_SCRIPT_BYTES:
            names += script_imports(script.read_text(errors="replace"))
    except OSError:
        pass
    for path in model_files(Path(model_dir)):
        try:
            with open(path, "rb") as f:
                names += pickle_modules(f.read(MAX_MODEL_BYTES))
        except OSError:
            continue
    own = own_modules(code, script)
    kept: list[str] = []
    for name in names:
        top = name.split(".")[0]
        if _NAME.match(name) and top not in own and top not in SKIPPED and name not in kept:
            kept.append(name)
    return kept[:MAX_NAMES]
