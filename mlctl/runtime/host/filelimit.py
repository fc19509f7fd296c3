"""The host's file descriptors: the soft limit raised to the hard one at start, and the public port's
connection limit kept below it (room left for instances, logs and the accept burst)."""

from __future__ import annotations

import os
import resource

DEFAULT_MAX_CONNECTIONS = 4096
RESERVE_MIN = 256  # descriptors kept for instance connections, pipes, log files, the admin socket
ACCEPT_BURST = 100  # connections the loop may accept before the first is seen (the listen backlog)


def raise_file_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (as far as allowed); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        for target in ((hard,) if hard != resource.RLIM_INFINITY else ()) + (1 << 20, 65536):
            if target <= soft:
                continue
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                return target
            except (ValueError, OSError):
                continue
    return soft


def max_connections(file_limit: int) -> int:
    """Pure: the public port's connection limit for a soft file limit: MLCTL_HOST_MAX_CONNECTIONS when
    set, else 4096, never more than the limit less a reserve (a quarter, at least 256) and the accept burst."""
    ceiling = max(16, file_limit - max(RESERVE_MIN, file_limit // 4) - ACCEPT_BURST)
    raw = os.environ.get("MLCTL_HOST_MAX_CONNECTIONS", "")
    wanted = int(raw) if raw.strip().isdigit() and int(raw) > 0 else DEFAULT_MAX_CONNECTIONS
    return min(wanted, ceiling)
