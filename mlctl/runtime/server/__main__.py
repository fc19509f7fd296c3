"""Entry point: ``python -m mlctl.runtime.server``."""

from mlctl.runtime.server.startup import exit_now, main

if __name__ == "__main__":
    exit_now(main())
