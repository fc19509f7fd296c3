"""The body budget: request bodies the public port holds at once, over all its connections (being read, or
read and not yet answered). A request that would take it past its total is answered 503."""

from __future__ import annotations

from .limits import setting
from .messages import Response, json_response

BODY_BUDGET_MIB = 256  # unless MLCTL_HOST_BODY_BUDGET_MIB says


def body_budget() -> int:
    """MLCTL_HOST_BODY_BUDGET_MIB in bytes: request bodies buffered at once, over all connections."""
    return int(setting("MLCTL_HOST_BODY_BUDGET_MIB", BODY_BUDGET_MIB) * 1024 * 1024)


class BodyBudget:
    """Bytes of request bodies held, against the total (MLCTL_HOST_BODY_BUDGET_MIB)."""

    __slots__ = ("held", "total")

    def __init__(self, total: int | None = None):
        self.held = 0
        self.total = body_budget() if total is None else total

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes stay within the total (pure: taking them is the caller's `held +=`)."""
        return self.held + size <= self.total

    def refusal(self) -> tuple[str, Response]:
        """The 503 (text, answer) for a body past the total."""
        text = (
            f"the gateway holds {self.held >> 20} MiB of request bodies, the most it holds at once "
            f"is {self.total >> 20} MiB (MLCTL_HOST_BODY_BUDGET_MIB): try again shortly"
        )
        return text, json_response(503, {"message": text}, [("Retry-After", "1")])
