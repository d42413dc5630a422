"""TA-Lib, imported without its pandas and polars wrappers.

TA-Lib's package imports pandas and polars when they are installed, only to wrap each of its
functions so that it also takes their Series. We pass NumPy arrays alone, and pandas' import
was ≈ 0.3 s of the backtest command's ≈ 1.1 s of imports (its report needs no pandas). So
the import hides them: a `None` in `sys.modules` makes `import pandas` raise
ModuleNotFoundError (the import system's documented behaviour), which TA-Lib takes for "not
installed". Where pandas is already imported (training), TA-Lib wraps as usual, with the
same results for NumPy input. Every module imports TA-Lib from here, first in the process,
while only the main thread runs (the CLI's and the tests' imports).
"""

from __future__ import annotations

import sys
from types import ModuleType

WRAPPED_FOR = ("pandas", "polars")


def _without_wrappers() -> ModuleType:
    hidden = [name for name in WRAPPED_FOR if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import talib
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
    return talib


talib = _without_wrappers()
