"""Signed requests to Azure Blob Storage made with the standard library: what plan and apply ask of the state.

Importing azure-storage-blob costs about 0.2-0.4 s of CPU (1.5 s without bytecode): more than the 150 ms a shared
state may add to a plan, and most of what it added to an apply. So a plan's read, and apply's lease and
conditional writes (mlctl.state.signedblob), are a handful of REST calls made here, signed with Shared Key (a
connection string's AccountKey, or AZURE_STORAGE_KEY) or a SAS (AZURE_STORAGE_SAS_TOKEN, or a connection
string's SharedAccessSignature). DefaultAzureCredential, and the state commands that list, read back or break
(`state versions`, `state pull --serial`, `force-unlock`), stay with the official SDK (mlctl.state.azureblob).

A Client keeps one connection per thread alive (as the SDK's session does: over TLS a new connection per request
would cost a handshake each) and retries twice, after 1 s and 2 s, when the account does not answer or answers 5xx
(the SDK's client, mlctl.state.blobsdk, waits as long in all). Through a proxy (the standard *_proxy variables)
requests go through urllib, which honours them, one connection per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Mapping
from urllib.parse import quote, unquote, urlencode, urlparse

from mlctl.state.blobaccess import Access

API_VERSION = "2025-01-05"
TIMEOUT_S = 10.0
RETRY_DELAYS_S = (1.0, 2.0)
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)  # a kept-alive connection closed


@dataclass(frozen=True)
class Response:
    status: int
    error_code: str | None
    headers: Mapping[str, str] = field(repr=False)  # names in lower case
    body: bytes = field(repr=False)
    retried: bool = False  # an earlier attempt failed: a conditional write may have been carried out by it

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    def message(self) -> str:
        """The service's own words for an error (its XML body, or the error code of a bodiless answer)."""
        return self.body.decode("utf-8", "replace") or self.error_code or f"HTTP {self.status}"


class Client:
    """Signed requests to one account (Access with a key or a SAS); one kept-alive connection per thread."""

    def __init__(self, access: Access, timeout: float = TIMEOUT_S, delays: tuple[float, ...] = RETRY_DELAYS_S):
        if not access.signs:
            raise ValueError("a Client signs with a key or a SAS; DefaultAzureCredential is the SDK's")
        self.access, self.timeout, self.delays = access, timeout, delays
        url = urlparse(access.account_url)
        self.scheme, self.host, self.base_path = url.scheme, url.netloc, url.path.rstrip("/")
        self._local = threading.local()

    def request(
        self,
        verb: str,
        container: str,
        blob: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """One request, retried when the account does not answer (OSError) or answers 5xx. HTTP errors are
        Responses; OSError when the account still does not answer after the last retry."""
        for attempt, delay in enumerate((*self.delays, None)):
            try:
                got = self._once(verb, container, blob, dict(query or {}), dict(headers or {}), body)
            except ssl.SSLCertVerificationError:
                raise  # the same certificate again: not retried
            except OSError:
                if delay is None:
                    raise
            else:
                if got.status < 500 or delay is None:
                    retried = attempt > 0 or got.retried
                    return Response(got.status, got.error_code, got.headers, got.body, retried=retried)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, verb: str, container: str, blob: str, query: dict, headers: dict, body: bytes) -> Response:
        path = f"{self.base_path}/{quote(container)}/{quote(blob)}"
        headers |= {"x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION}
        if verb in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
            # signed as sent: urllib (through a proxy) would otherwise add a form Content-Type after signing
            headers.setdefault("Content-Type", "application/octet-stream")
        target = path
        if self.access.account_key:
            headers["Authorization"] = shared_key(verb, self.access, path, query, headers)
            if query:
                target += "?" + urlencode(query)
        else:
            target += "?" + "&".join(filter(None, (urlencode(query), self.access.sas)))
        if _proxied(self.scheme, self.host):
            return _through_urllib(f"{self.scheme}://{self.host}{target}", verb, headers, body, self.timeout)
        return self._kept_alive(verb, target, headers, body)

    def _kept_alive(self, verb: str, target: str, headers: dict, body: bytes) -> Response:
        connection = getattr(self._local, "connection", None)
        reused = connection is not None
        for fresh in (False, True) if connection is not None else (True,):
            if fresh:
                connection = self._connect()
            assert connection is not None
            try:
                connection.request(verb, target, body=body or None, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except STALE:
                connection.close()
                self._local.connection = None
                if fresh:  # a new connection that fails so is the account's doing: retried as any OSError
                    raise
                continue  # the server closed a kept-alive connection before reading the request: send it anew
            except BaseException:
                connection.close()
                self._local.connection = None
                raise
            if answer.will_close:
                connection.close()
                self._local.connection = None
            got = {k.lower(): v for k, v in answer.getheaders()}
            return Response(answer.status, got.get("x-ms-error-code"), got, data, retried=fresh and reused)
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            made: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, timeout=self.timeout, context=tls_context()
            )
        else:
            made = http.client.HTTPConnection(self.host, timeout=self.timeout)
        self._local.connection = made
        return made


def tls_context() -> ssl.SSLContext:
    """The certificates trusted: the bundle REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names (as the SDK's transport,
    requests, reads them), else the system's store (SSL_CERT_FILE / SSL_CERT_DIR honoured)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    return ssl.create_default_context(cafile=bundle)


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment's proxy settings send requests to `host` through a proxy."""
    import urllib.request

    return scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)


def _through_urllib(url: str, verb: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Response:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body if verb in ("PUT", "POST") else None, headers=dict(headers))
    request.method = verb
    # an opener of its own, whose ProxyHandler reads the proxy variables now: urlopen's shared opener keeps the
    # ones it saw on the process's first urlopen (CI: a request made earlier in the session went around the proxy)
    handlers: list = [urllib.request.ProxyHandler()]
    if url.startswith("https"):
        handlers.append(urllib.request.HTTPSHandler(context=tls_context()))
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as answer:
            got = {k.lower(): v for k, v in answer.headers.items()}
            return Response(answer.status, got.get("x-ms-error-code"), got, answer.read())
    except urllib.error.HTTPError as e:
        with e:
            got = {k.lower(): v for k, v in e.headers.items()}
            return Response(e.code, got.get("x-ms-error-code"), got, e.read())


STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def shared_key(verb: str, access: Access, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """Pure: the Shared Key Authorization header of a request (Azure Storage's "Authorize with Shared Key": the
    verb, eleven standard headers (a zero Content-Length as empty), the x-ms-* headers sorted, then the resource:
    /ACCOUNT/PATH and each query parameter as `name:value`, sorted)."""
    named = {k.lower(): v.strip() for k, v in headers.items()}
    standard = [named.get(h, "") for h in STANDARD_HEADERS]
    if standard[2] == "0":
        standard[2] = ""
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(named.items()) if k.startswith("x-ms-"))
    resource = f"/{access.account_name}{path}" + "".join(
        f"\n{k.lower()}:{unquote(v)}" for k, v in sorted(query.items())
    )
    to_sign = "\n".join((verb, *standard)) + "\n" + canonical_headers + resource
    digest = hmac.new(base64.b64decode(access.account_key or ""), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {access.account_name}:{base64.b64encode(digest).decode()}"
