"""AMLResponse: what a @rawhttp run() returns, the subset of Flask's ``Response`` that scoring scripts use.

In Azure, ``AMLResponse(message, status_code, response_headers={}, json_str=False)`` is a Flask
``Response``: scripts set ``resp.mimetype``, ``resp.status_code``, ``resp.headers["Allow"] = ...``,
``resp.set_data(...)``. This module mirrors Werkzeug's behaviour for those attributes (status strings,
charset on text mimetypes, a case-insensitive multi-valued header mapping) with the standard library only.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from mlctl.runtime.server import jsoncodec

_CHARSET_MIMETYPES = {
    "application/ecmascript",
    "application/javascript",
    "application/sql",
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
}


def content_type_of(mimetype: str) -> str:
    """Werkzeug's get_content_type: a text mimetype gains ``; charset=utf-8``. Pure."""
    if mimetype.startswith("text/") or mimetype in _CHARSET_MIMETYPES or mimetype.endswith("+xml"):
        return f"{mimetype}; charset=utf-8"
    return mimetype


def _header_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if "\n" in text or "\r" in text:
        raise ValueError("Header values must not contain newline characters.")
    return text


def _status_of(value: Union[str, int, HTTPStatus]) -> Tuple[str, int]:
    """Werkzeug's status cleaning: (status line, code) from an int or a '201 CREATED'-style string. Pure."""
    if isinstance(value, (int, HTTPStatus)):
        code = int(value)
    else:
        value = str(value).strip()
        if not value:
            raise ValueError("Empty status argument")
        code_str, sep, _ = value.partition(" ")
        try:
            code = int(code_str)
        except ValueError:
            return f"0 {value}", 0
        if sep:
            return value, code
    try:
        return f"{code} {HTTPStatus(code).phrase.upper()}", code
    except ValueError:
        return f"{code} UNKNOWN", code


class ResponseHeaders:
    """Ordered, case-insensitive, multi-valued response headers (Werkzeug's ``Headers`` subset)."""

    def __init__(self, pairs: Iterable[Tuple[str, Any]] = ()) -> None:
        self._pairs: List[Tuple[str, str]] = [(str(k), _header_value(v)) for k, v in pairs]

    def __getitem__(self, key: Union[str, int]) -> Any:
        if isinstance(key, int):
            return self._pairs[key]
        low = key.lower()
        for k, v in self._pairs:
            if k.lower() == low:
                return v
        raise KeyError(key)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key: str, type: Any = None) -> List[Any]:
        low = key.lower()
        values = [v for k, v in self._pairs if k.lower() == low]
        return [type(v) for v in values] if type else values

    get_all = getlist

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def set(self, key: str, value: Any) -> None:
        """Replace every value of ``key`` by one, in the place of the first (Werkzeug's set)."""
        value = _header_value(value)
        low = key.lower()
        for i, (k, _) in enumerate(self._pairs):
            if k.lower() == low:
                self._pairs[i] = (key, value)
                self._pairs[i + 1 :] = [p for p in self._pairs[i + 1 :] if p[0].lower() != low]
                return
        self._pairs.append((key, value))

    def setdefault(self, key: str, default: Any) -> str:
        if key not in self:
            self.add(key, default)
        return self[key]

    def add(self, key: str, value: Any) -> None:
        self._pairs.append((key, _header_value(value)))

    add_header = add

    def extend(self, other: Any = (), **kwargs: Any) -> None:
        items = other.items() if hasattr(other, "items") else other
        for k, v in list(items) + list(kwargs.items()):
            self.add(k, v)

    def update(self, other: Any = (), **kwargs: Any) -> None:
        items = other.items() if hasattr(other, "items") else other
        for k, v in list(items) + list(kwargs.items()):
            self.set(k, v)

    def __delitem__(self, key: str) -> None:
        self.remove(key)

    def remove(self, key: str) -> None:
        low = key.lower()
        self._pairs = [p for p in self._pairs if p[0].lower() != low]

    def pop(self, key: str, *default: Any) -> str:
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self.remove(key)
        return value

    def clear(self) -> None:
        self._pairs.clear()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k.lower() == key.lower() for k, _ in self._pairs)

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(list(self._pairs))

    def __len__(self) -> int:
        return len(self._pairs)

    def keys(self) -> List[str]:
        return [k for k, _ in self._pairs]

    def values(self) -> List[str]:
        return [v for _, v in self._pairs]

    def items(self) -> List[Tuple[str, str]]:
        return list(self._pairs)

    def to_wsgi_list(self) -> List[Tuple[str, str]]:
        return list(self._pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"


class AMLResponse:
    """A response returned by a @rawhttp run(): Azure's constructor, Flask's attributes."""

    default_mimetype = "text/html"

    def __init__(
        self,
        message: Any,
        status_code: Union[int, str] = 200,
        response_headers: Optional[Mapping[str, str]] = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        self.headers = ResponseHeaders()
        self.direct_passthrough = False
        self.status = status_code  # type: ignore[assignment]
        user = dict(response_headers or {})
        if message is None:
            body: Union[bytes, str] = b"{}"
            self.mimetype = "application/json"
        elif json_str:
            body = jsoncodec.std_dumps(message)  # Azure: json.dumps(message)
            self.mimetype = "application/json"
        else:
            body = message if isinstance(message, (str, bytes, bytearray, memoryview)) else str(message)
            if not any(k.lower() == "content-type" for k in user):  # Azure: the script's Content-Type wins
                self.mimetype = self.default_mimetype
        self.set_data(body)
        self.headers["x-ms-run-function-failed"] = run_function_failed  # as Azure's: a header of the response
        for key, value in user.items():  # Azure: a comma separates repeated values
            for v in str(value).split(","):
                self.headers.add(key, v.strip())

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: Union[str, int, HTTPStatus]) -> None:
        self._status, self._status_code = _status_of(value)

    @property
    def status_code(self) -> int:
        return self._status_code

    @status_code.setter
    def status_code(self, code: int) -> None:
        self.status = code

    @property
    def mimetype(self) -> Optional[str]:
        ct = self.headers.get("content-type")
        return ct.partition(";")[0].strip() if ct else None

    @mimetype.setter
    def mimetype(self, value: str) -> None:
        self.headers["Content-Type"] = content_type_of(value)

    @property
    def content_type(self) -> Optional[str]:
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value: Optional[str]) -> None:
        if value is None:
            self.headers.remove("Content-Type")
        else:
            self.headers["Content-Type"] = value

    @property
    def content_length(self) -> Optional[int]:
        return self.headers.get("Content-Length", type=int)

    def set_data(self, value: Union[bytes, str]) -> None:
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, (bytearray, memoryview)):
            value = bytes(value)
        elif not isinstance(value, bytes):
            raise TypeError(f"set_data() takes str or bytes, not {type(value).__name__}")
        self._body = value
        self.headers["Content-Length"] = str(len(value))

    def get_data(self, as_text: bool = False) -> Any:
        return self._body.decode() if as_text else self._body

    @property
    def data(self) -> bytes:
        return self._body

    @data.setter
    def data(self, value: Union[bytes, str]) -> None:
        self.set_data(value)

    @property
    def run_function_failed(self) -> bool:
        return self.headers.get("x-ms-run-function-failed") == "True"

    @run_function_failed.setter
    def run_function_failed(self, value: bool) -> None:
        self.headers["x-ms-run-function-failed"] = bool(value)

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def is_json(self) -> bool:
        mt = self.mimetype or ""
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_json(self, force: bool = False, silent: bool = False) -> Any:
        if not (force or self.is_json):
            return None
        try:
            return jsoncodec.loads(self._body)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._body)} bytes [{self.status}]>"
