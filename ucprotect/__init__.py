"""ucprotect: make photos unlearnable before publishing them (14A, "One for All", ICML 2024).

Python API::

    from ucprotect import Protector, protect_folder, ProtectOptions
    protector = Protector.from_file()              # shipped weights, best device
    safe = protector.protect(Image.open("a.jpg"))  # one Pillow image
    result = protect_folder("photos", "safe", protector, ProtectOptions(group_by="folder"))
"""
from .backbones import create_backbone, list_backbones, register_backbone
from .engine import ProtectOptions, ProtectResult, Protector, protect_folder
from .errors import UcprotectError
from .generator import GeneratorConfig, create_generator, list_generators
from .objectives import create_objective, list_objectives
from .weights import default_weights_path, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "Protector", "ProtectOptions", "ProtectResult", "protect_folder", "UcprotectError", "GeneratorConfig",
    "create_generator", "list_generators", "create_backbone", "list_backbones", "register_backbone",
    "create_objective", "list_objectives", "load_weights", "save_weights", "default_weights_path",
]
