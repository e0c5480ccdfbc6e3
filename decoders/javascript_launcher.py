"""Started by path as the sandbox process: runs the worker without the platform's imports.

The process runs in isolated mode (`python -I`), so neither this file's directory nor
the environment is on its import path. The worker's modules are found through a bare
`decoders` package that points at this directory: the real package's `__init__` (the
registry and with it the rest of the platform) never runs in the process a script runs in.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def start() -> None:
    package = types.ModuleType("decoders")
    package.__path__ = [str(Path(__file__).parent)]
    sys.modules["decoders"] = package
    from decoders.javascript_worker import main  # found through the bare package above

    main()


if __name__ == "__main__":
    start()
