"""Raw HTTP access for score.py: the @rawhttp decorator, AMLRequest (AMLResponse is in response.py).

AMLRequest offers what real scripts use of Flask's request object.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl

from mlctl.runtime.server import jsoncodec
from mlctl.runtime.server.response import AMLResponse  # noqa: F401  (scripts import it from here too)

_rawHttpRequested = False


def rawhttp(func: Any) -> Any:
    """Decorator for run(): the server passes the request object instead of the body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    try:
        func.__mlctl_rawhttp__ = True
    except AttributeError:  # pragma: no cover - builtins
        pass
    return func


class BadRequest(ValueError):
    """The request body cannot be read as asked (invalid JSON): answered 400, like Flask's BadRequest."""

    code = 400


class MultiDict(dict):
    """A dict of first values that also keeps every value (Werkzeug's MultiDict subset)."""

    def __init__(self, pairs: List[Tuple[str, Any]] = ()) -> None:  # type: ignore[assignment]
        super().__init__()
        self._lists: Dict[str, List[Any]] = {}
        for k, v in pairs:
            self._lists.setdefault(k, []).append(v)
            if k not in self:
                dict.__setitem__(self, k, v)

    def getlist(self, key: str, type: Any = None) -> List[Any]:
        values = list(self._lists.get(key, []))
        return [type(v) for v in values] if type else values

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        if key not in self:
            return default
        value = dict.__getitem__(self, key)
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def items(self, multi: bool = False):  # type: ignore[override]
        if multi:
            return [(k, v) for k, vs in self._lists.items() for v in vs]
        return super().items()

    def to_dict(self, flat: bool = True) -> Dict[str, Any]:
        return dict(self) if flat else {k: list(v) for k, v in self._lists.items()}


class FileStorage:
    """An uploaded file (Werkzeug's FileStorage subset)."""

    def __init__(self, data: bytes, filename: Optional[str], name: str, content_type: Optional[str]) -> None:
        self.stream = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.content_type = content_type
        self.mimetype = (content_type or "").split(";")[0].strip()

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def save(self, dst: Any) -> None:
        if isinstance(dst, (str, bytes)) or hasattr(dst, "__fspath__"):
            with open(dst, "wb") as f:
                f.write(self.stream.getvalue())
        else:
            dst.write(self.stream.getvalue())

    def __repr__(self) -> str:
        return f"<FileStorage: {self.filename!r} ({self.content_type!r})>"


class Headers:
    """Case-insensitive, read-only request headers (Werkzeug's EnvironHeaders subset)."""

    def __init__(self, pairs: List[Tuple[str, str]]) -> None:
        self._pairs = pairs
        self._map: Dict[str, str] = {}
        for k, v in pairs:
            self._map.setdefault(k.lower(), v)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        value = self._map.get(key.lower())
        if value is None:
            return default
        return type(value) if type else value

    def getlist(self, key: str) -> List[str]:
        return [v for k, v in self._pairs if k.lower() == key.lower()]

    def __getitem__(self, key: str) -> str:
        return self._map[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._map

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def keys(self) -> List[str]:
        return [k for k, _ in self._pairs]

    def items(self) -> List[Tuple[str, str]]:
        return list(self._pairs)

    def to_dict(self) -> Dict[str, str]:
        return dict(self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


def _parse_multipart(content_type: str, body: bytes) -> Tuple[MultiDict, MultiDict]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    form: List[Tuple[str, Any]] = []
    files: List[Tuple[str, Any]] = []
    if not msg.is_multipart():
        return MultiDict(), MultiDict()
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append((name, FileStorage(payload, filename, name, part.get_content_type())))
        else:
            charset = part.get_content_charset() or "utf-8"
            form.append((name, payload.decode(charset, "replace")))
    return MultiDict(form), MultiDict(files)


class AMLRequest:
    """The request handed to a @rawhttp run(): a subset of Flask's ``request``."""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: List[Tuple[str, str]],
        body: bytes,
        remote_addr: Optional[str] = None,
        scheme: str = "http",
        host: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string.encode("latin-1", "replace")
        self.full_path = f"{path}?{query_string}"
        self.headers = Headers(headers)
        self.args = MultiDict(parse_qsl(query_string, keep_blank_values=True))
        self.data = body
        self.remote_addr = remote_addr
        self.scheme = scheme
        self.host = host
        self.url = f"{scheme}://{host}{self.full_path if query_string else path}"
        self.base_url = f"{scheme}://{host}{path}"
        self.content_type = self.headers.get("Content-Type")
        self.mimetype = (self.content_type or "").split(";")[0].strip().lower()
        length = self.headers.get("Content-Length")  # Flask: None when the request says no length
        self.content_length = int(length) if length is not None and length.isdigit() else (len(body) or None)
        self._form: Optional[Tuple[MultiDict, MultiDict]] = None

    @property
    def is_json(self) -> bool:
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        return self.data.decode("utf-8", "replace") if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            if silent:
                return None
            raise BadRequest(
                "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."
            )
        try:
            return jsoncodec.loads(self.data)
        except ValueError as exc:
            if silent:
                return None
            raise BadRequest(f"Failed to decode JSON object: {exc}") from None

    @property
    def json(self) -> Any:
        return self.get_json()

    def _forms(self) -> Tuple[MultiDict, MultiDict]:
        if self._form is None:
            if self.mimetype == "multipart/form-data":
                self._form = _parse_multipart(self.content_type or "", self.data)
            elif self.mimetype == "application/x-www-form-urlencoded":
                pairs = parse_qsl(self.data.decode("utf-8", "replace"), keep_blank_values=True)
                self._form = (MultiDict(pairs), MultiDict())
            else:
                self._form = (MultiDict(), MultiDict())
        return self._form

    @property
    def form(self) -> MultiDict:
        return self._forms()[0]

    @property
    def files(self) -> MultiDict:
        return self._forms()[1]

    @property
    def values(self) -> MultiDict:
        return MultiDict(list(self.args.items(multi=True)) + list(self.form.items(multi=True)))

    @property
    def stream(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def __repr__(self) -> str:
        return f"<AMLRequest {self.url!r} [{self.method}]>"
