"""Entry point: ``python -m mlctl.runtime.server``."""
import atexit
import logging
import os
import sys
import threading

from mlctl.runtime.server.serve import main


def exit_now(code: int) -> None:
    """Exit with `code` without tearing down every module: with scikit-learn loaded that teardown
    takes about 0.5 s, which a rollout waits for while the old instance stops. atexit handlers
    (the script's, logging's) and buffered output still run. With a non-daemon thread of the
    script still running, exit normally (which waits for it) instead."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
