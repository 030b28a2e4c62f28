"""A user's own code, named in a config by import path ("my_pkg.module:Name").

Modules are found beside the config file, in the working directory and on PYTHONPATH. A module that
is not installed (not under site-packages) is code Ray workers on other machines do not have: its
top-level package (or single file) is shipped to them as a `py_modules` runtime env.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from raygrad.errors import ConfigError, last_line


def import_object(spec: str, field: str, search: Iterable[str | Path] = ()) -> Any:
    """The object `spec` ("package.module:Name") names; ConfigError naming `field` if it cannot be had."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{field}: {spec!r} is not an import path like 'my_pkg.module:Name'")
    for folder in [*search, Path.cwd()]:
        folder = str(Path(folder).resolve())
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # the user's module may raise anything while it is imported
        raise ConfigError(f"{field}: cannot import {module_name!r} ({last_line(err)})") from None
    try:
        obj = module
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigError(f"{field}: module {module_name!r} ({module.__file__}) has no {attribute!r}") from None
    return obj


def code_to_ship(objects: Iterable[Any]) -> list[str]:
    """Paths of the top-level packages (or single-file modules) that define `objects`, for Ray's
    `py_modules`; installed packages, raygrad itself and a Ray job's working directory are left out
    (workers have them)."""
    paths: list[str] = []
    for obj in objects:
        top = (getattr(obj, "__module__", None) or "").split(".")[0]
        if not top or top in ("raygrad", "__main__", "builtins"):
            continue  # __main__ travels by value with cloudpickle
        spec = importlib.util.find_spec(top)
        if spec is None:
            continue
        location = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
        parts = Path(location or "").parts
        if not location or any(part in ("site-packages", "dist-packages") for part in parts):
            continue
        if "working_dir_files" in parts:  # in a Ray job's --working-dir: every worker of the job has it already
            continue
        if location not in paths:
            paths.append(location)
    return paths
