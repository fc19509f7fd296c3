"""The body budget: request bodies the public port holds at once, over all its connections (being read, or
read and not yet answered). A request that would take it past its total is answered 503, and so is one
without valid credentials past the smaller share such requests may hold (their bodies are small, each at
most limits.MAX_UNAUTHORIZED_BODY, but many slow ones could otherwise fill the budget)."""

from __future__ import annotations

from .limits import MAX_UNAUTHORIZED_BODY, setting
from .messages import Response, json_response

BODY_BUDGET_MIB = 256  # unless MLCTL_HOST_BODY_BUDGET_MIB says
UNAUTHENTICATED_SHARE = 8  # bodies without credentials: an eighth, unless MLCTL_HOST_UNAUTHENTICATED_BODY_MIB says


def body_budget() -> int:
    """MLCTL_HOST_BODY_BUDGET_MIB in bytes: request bodies buffered at once, over all connections."""
    return int(setting("MLCTL_HOST_BODY_BUDGET_MIB", BODY_BUDGET_MIB) * 1024 * 1024)


def unauthenticated_budget(total: int) -> int:
    """MLCTL_HOST_UNAUTHENTICATED_BODY_MIB in bytes (at most `total`): bodies without valid credentials held at
    once; an eighth of `total` by default."""
    share = setting("MLCTL_HOST_UNAUTHENTICATED_BODY_MIB", total / UNAUTHENTICATED_SHARE / (1024 * 1024))
    return min(total, int(share * 1024 * 1024))


class BodyBudget:
    """Bytes of request bodies held, against the total (MLCTL_HOST_BODY_BUDGET_MIB), and those of requests
    without valid credentials against their share (MLCTL_HOST_UNAUTHENTICATED_BODY_MIB)."""

    __slots__ = ("held", "total", "unauthenticated", "unauthenticated_total")

    def __init__(self, total: int | None = None):
        self.held = self.unauthenticated = 0
        self.total = body_budget() if total is None else total
        self.unauthenticated_total = unauthenticated_budget(self.total)

    def fits(self, size: int, authorized: bool) -> bool:
        """Whether `size` more bytes stay within the budget (pure: taking them is the caller's `held +=`)."""
        if not authorized and self.unauthenticated + size > self.unauthenticated_total:
            return False
        return self.held + size <= self.total

    def over(self) -> bool:
        """Whether what is held is past the total or the unauthenticated share."""
        return self.held > self.total or self.unauthenticated > self.unauthenticated_total

    def give(self, size: int, authorized: bool) -> None:
        """`size` bytes of a body are no longer held (its request answered, refused or gone)."""
        self.held -= size
        if not authorized:
            self.unauthenticated -= size

    def refusal(self, authorized: bool) -> tuple[str, Response]:
        """The 503 (text, answer) for a body past the total (or, without credentials, past their share)."""
        # such a body is at most MAX_UNAUTHORIZED_BODY: unless the total is that close, the share was the limit
        if not authorized and self.held + MAX_UNAUTHORIZED_BODY <= self.total:
            text = (
                f"the gateway holds {self.unauthenticated >> 20} MiB of request bodies without valid credentials, "
                f"the most it holds at once is {self.unauthenticated_total >> 20} MiB "
                f"(MLCTL_HOST_UNAUTHENTICATED_BODY_MIB): send the key, or try again shortly"
            )
        else:
            text = (
                f"the gateway holds {self.held >> 20} MiB of request bodies, the most it holds at once "
                f"is {self.total >> 20} MiB (MLCTL_HOST_BODY_BUDGET_MIB): try again shortly"
            )
        return text, json_response(503, {"message": text}, [("Retry-After", "1")])
