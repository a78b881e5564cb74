"""The repository's scripts (``scripts/*.py``, not part of the package) imported as modules for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script_path(name: str) -> Path:
    """``scripts/<name>.py``."""
    return SCRIPTS / f"{name}.py"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` as the module ``name``. It is registered in ``sys.modules``
    before it runs, as a dataclass defined in it looks its module up there."""
    spec = importlib.util.spec_from_file_location(name, script_path(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
