"""Environment specs: a conda file parsed and normalized, so the image digest depends on the spec alone."""

from __future__ import annotations

import re

from mlctl.errors import Diagnostic
from mlctl.schemas.documents import read_document

# conda match spec: [channel::]name[ version[ build]] or name=version[=build], name==version, name>=version, ...
_CONDA = re.compile(r"^(?:(?P<channel>[^:\s]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_PIP = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?P<extras>\[[^\]]*\])?\s*(?P<rest>.*)$")


def canonicalize(name: str) -> str:
    """Pure: PEP 503 normal form: lower case, runs of '-', '_', '.' become '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def normalize_conda_dependency(spec: str) -> tuple[str, str] | None:
    """Pure: a conda dependency -> (lower-case name, PEP 440 specifier or '').

    'numpy=1.26' -> ('numpy', '==1.26.*') (conda's '=' is a prefix match); 'numpy==1.26.4'
    -> ('numpy', '==1.26.4'); 'numpy 1.26' -> ('numpy', '==1.26.*'); build strings and
    channel prefixes are dropped. None when it cannot be parsed.
    """
    m = _CONDA.match(spec.strip())
    if not m:
        return None
    name, rest = m["name"].lower(), m["rest"].strip()
    if not rest:
        return name, ""
    if rest[0] not in "=<>!~":
        rest = "=" + rest.split()[0]                     # 'numpy 1.26 py_0' -> '=1.26'
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0]                 # drop '=build'
        version = version.removesuffix(".*").removesuffix("*")
        return name, f"=={version}.*" if version else ""
    if rest.startswith("=="):
        return name, "==" + rest[2:].split("=")[0].strip()
    return name, re.sub(r"\s+", "", rest)


def normalize_pip_requirement(spec: str) -> str:
    """Pure: a pip line normalized: canonical name, extras sorted, specifiers without spaces; options kept."""
    text = spec.strip()
    if text.startswith("-") or "://" in text or text.startswith((".", "/")):
        return text
    m = _PIP.match(text)
    if not m:
        return text
    extras = ""
    if m["extras"]:
        items = sorted(canonicalize(e.strip()) for e in m["extras"][1:-1].split(",") if e.strip())
        extras = f"[{','.join(items)}]"
    rest = m["rest"].strip()
    marker = ""
    if ";" in rest:
        rest, marker = rest.split(";", 1)
        marker = "; " + " ".join(marker.split())
    return canonicalize(m["name"]) + extras + re.sub(r"\s+", "", rest) + marker


def parse_conda_file(path, diags: list[Diagnostic]) -> dict | None:
    """{python, channels, conda_packages, pip_packages} from a conda YAML; None (with errors) when unusable."""
    doc, problems = read_document(path)
    diags.extend(problems)
    if doc is None:
        return None
    data = doc.data
    if not isinstance(data, dict):
        diags.append(Diagnostic("conda file is not a mapping", "A conda file has 'channels:' and 'dependencies:'.",
                                file=doc.display, line=1))
        return None
    python, conda, pip = None, set(), set()
    channels = data.get("channels") or []
    deps = data.get("dependencies") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        diags.append(Diagnostic("'channels' must be a list of channel names", "", **doc.at(("channels",))))
        channels = []
    if not isinstance(deps, list):
        diags.append(Diagnostic("'dependencies' must be a list", "List conda packages, and pip packages under '- pip:'.",
                                **doc.at(("dependencies",))))
        deps = []
    for i, dep in enumerate(deps):
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip.update(normalize_pip_requirement(str(p)) for p in dep["pip"] if str(p).strip())
            continue
        parsed = normalize_conda_dependency(str(dep)) if isinstance(dep, (str, int, float)) else None
        if parsed is None:
            diags.append(Diagnostic(f"cannot read conda dependency {dep!r}",
                                    "Write 'name', 'name=version' or a '- pip: [...]' list.",
                                    **doc.at(("dependencies", i))))
            continue
        name, spec = parsed
        if name == "python":
            python = spec.removeprefix("==").removesuffix(".*") if spec.startswith("==") else (spec or None)
        else:
            conda.add(name + spec)
    return {
        "python": python,
        "channels": list(dict.fromkeys(channels)),   # order is conda's priority: kept, duplicates dropped
        "conda_packages": sorted(conda),
        "pip_packages": sorted(pip),
    }
