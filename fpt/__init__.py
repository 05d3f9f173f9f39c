"""fpt: frozen pretrained transformers for cross-modal transfer.

The public Python API (docs/api.md) is the names in `__all__`: `build` a model, `inspect` what trains, `train` a run as
`fpt train` does, `load` a finished run, and the types they return. Everything else is internal. `import fpt` stays
light (no torch): each name imports its module the first time it is used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fpt.errors import FPTError

__version__ = "0.1.0"

LAZY = {  # name -> "module:attribute", imported on first use
    "build": "fpt.api:build",
    "inspect": "fpt.api:inspect",
    "train": "fpt.api:train",
    "load": "fpt.run.predict:load",
    "Run": "fpt.run.predict:Run",
    "TrainResult": "fpt.api:TrainResult",
    "Results": "fpt.run.results:Results",
    "ParamRow": "fpt.models.freeze:ParamRow",
}
__all__ = ["build", "inspect", "train", "load", "Run", "TrainResult", "Results", "ParamRow", "FPTError", "__version__"]

if TYPE_CHECKING:
    from fpt.api import TrainResult, build, inspect, train
    from fpt.models.freeze import ParamRow
    from fpt.run.predict import Run, load
    from fpt.run.results import Results


def __getattr__(name: str) -> Any:
    if name not in LAZY:
        raise AttributeError(f"module 'fpt' has no attribute {name!r}")
    module, _, attr = LAZY[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY})
