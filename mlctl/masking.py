"""Masking secrets by their value: credentials in URLs, and tokens with a recognisable shape.

Pure. Masking by name (an environment variable called `*TOKEN*`, `*PASSWORD*`) is the plan
presenter's; this catches what a name does not say: `DATABASE_URL: postgres://app:hunter2@db/x`
is shown `postgres://app:***@db/x`, `GH: ghp_...` is shown `(sensitive)`. A `${VAR}` reference is
not a secret (it names one) and is kept.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "(sensitive)"
HIDDEN = "***"

# scheme://userinfo@ : the userinfo of a URL (anything up to the last '@' before the host's '/')
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# tokens whose shape says what they are (GitHub, GitLab, Slack, AWS, OpenAI-style, Azure SAS, JWT, PEM)
_TOKEN = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|A(?:KIA|SIA)[0-9A-Z]{16}|sk-[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+)"
    r"|[?&]sig=[A-Za-z0-9%+/=]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def is_reference(text: str) -> bool:
    """Pure: is `text` made only of `${VAR}` references (and ':' between them)?"""
    return _REFERENCE.sub("", text).replace(":", "") == ""


def url_credentials(text: str) -> list[str]:
    """Pure: the userinfo parts of the URLs in `text` that hold a literal credential (not `${VAR}`)."""
    return [m["userinfo"] for m in _USERINFO.finditer(text) if not is_reference(m["userinfo"])]


def mask_url_credentials(text: str) -> str:
    """Pure: `text` with each URL's literal credentials hidden: `https://u:p@h/` -> `https://u:***@h/`,
    `https://TOKEN@h/` -> `https://***@h/`; `${VAR}` references are kept."""

    def hide(m: re.Match) -> str:
        info = m["userinfo"]
        if is_reference(info):
            return m.group(0)
        user, sep, _ = info.partition(":")
        return m["scheme"] + (f"{user}:{HIDDEN}" if sep else HIDDEN) + "@"

    return _USERINFO.sub(hide, text)


def looks_like_token(text: str) -> bool:
    """Pure: does `text` hold a token of a recognisable shape (ghp_..., AKIA..., a JWT, a SAS sig, a PEM key)?"""
    return bool(_TOKEN.search(text))


def masked_text(text: str) -> str:
    """Pure: free text (a progress message, a log line) with URL credentials hidden and each
    token-shaped part replaced by `(sensitive)`; the rest of the text is kept."""
    return _TOKEN.sub(MASK, mask_url_credentials(text))


def masked_value(value: Any) -> Any:
    """Pure: `value` (JSON: strings, lists, objects) with URL credentials hidden and token-shaped
    strings replaced by `(sensitive)`, recursively."""
    if isinstance(value, str):
        return MASK if looks_like_token(value) else mask_url_credentials(value)
    if isinstance(value, dict):
        return {k: masked_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked_value(v) for v in value]
    return value
