"""JSON encoding and decoding: orjson when present, else the standard library."""

from __future__ import annotations

import json
from typing import Any

try:  # pragma: no cover - depends on the environment
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

_OPTS = 0
if _orjson is not None:
    _OPTS = _orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    """Fallback for values json cannot encode: numpy and pandas objects, sets, bytes."""
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    to_dict = getattr(obj, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    item = getattr(obj, "item", None)
    if item is not None:
        return item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def std_dumps(obj: Any) -> bytes:
    """The standard library's spacing (what Azure's AMLResponse(json_str=True) writes), with the fallbacks."""
    return json.dumps(obj, default=_default).encode("utf-8")


if _orjson is not None:

    def dumps(obj: Any) -> bytes:
        """Encode obj as JSON bytes (NaN becomes null with orjson, as JSON requires)."""
        try:
            return _orjson.dumps(obj, default=_default, option=_OPTS)
        except TypeError:
            return std_dumps(obj)

    def loads(data: Any) -> Any:
        """Decode JSON from str or bytes; raises ValueError on invalid JSON."""
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError as exc:
            # the standard library accepts NaN/Infinity, which Python clients send
            try:
                return json.loads(data)
            except RecursionError:
                raise ValueError(str(exc)) from None

else:  # pragma: no cover
    dumps = std_dumps

    def loads(data: Any) -> Any:
        """Decode JSON from str or bytes; raises ValueError on invalid JSON."""
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
