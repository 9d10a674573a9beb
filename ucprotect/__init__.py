"""ucprotect: make photos unlearnable before publishing them (14A, "One for All", ICML 2024).

Python API::

    from ucprotect import Protector, protect_folder, ProtectOptions
    protector = Protector.from_file()              # shipped weights, best device
    safe = protector.protect(Image.open("a.jpg"))  # one Pillow image
    result = protect_folder("photos", "safe", protector, ProtectOptions(group_by="folder"))
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The API is loaded on first use (PEP 562), so that `ucprotect --help` and `import ucprotect.errors` do
# not wait for torch (seconds on a small machine).
_API = {
    "create_backbone": "backbones", "list_backbones": "backbones", "register_backbone": "backbones",
    "ProtectOptions": "engine", "ProtectResult": "engine", "Protector": "engine", "protect_folder": "engine",
    "UcprotectError": "errors",
    "GeneratorConfig": "generator", "create_generator": "generator", "list_generators": "generator",
    "create_objective": "objectives", "list_objectives": "objectives",
    "default_weights_path": "weights", "load_weights": "weights", "save_weights": "weights",
}

if TYPE_CHECKING:
    from .backbones import create_backbone, list_backbones, register_backbone
    from .engine import ProtectOptions, ProtectResult, Protector, protect_folder
    from .errors import UcprotectError
    from .generator import GeneratorConfig, create_generator, list_generators
    from .objectives import create_objective, list_objectives
    from .weights import default_weights_path, load_weights, save_weights


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ucprotect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))


__version__ = "0.1.0"

__all__ = list(_API)
