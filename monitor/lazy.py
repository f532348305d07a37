"""Modules imported on first use: the streaming worker loads reference profiles from files and needs pandas
only to build one (warm-up), so importing it up front would cost every worker ~60 MB of resident memory.

>>> np = lazy_module("numpy")
>>> float(np.sqrt(4.0))
2.0
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on the first attribute access (type checkers should
    import the real module under ``TYPE_CHECKING``)."""
    return _LazyModule(name)
