"""Entry point: ``python -m mlctl.runtime.server``."""
import sys

from mlctl.runtime.server.serve import main

if __name__ == "__main__":
    sys.exit(main())
