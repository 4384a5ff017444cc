"""Public names of a package loaded on first use (PEP 562).

``import jaxsoft`` and ``import jaxsoft.experiment`` import no JAX: the
``jaxsoft`` command guards the heavy imports against Ctrl-C
(`jaxsoft.__main__`). This module imports only the standard library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["loader"]


def loader(
    package: str, homes: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: a name of ``homes`` (name
    -> the submodule that defines it) or a submodule is imported when first
    read and kept in the package's ``namespace`` (its ``globals()``)."""

    def missing(name: str) -> AttributeError:
        return AttributeError(f"module {package!r} has no attribute {name!r}")

    def getattr_(name: str) -> Any:
        if name in homes:
            value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        elif name.startswith("__"):
            raise missing(name)
        else:
            try:
                value = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
                raise missing(name) from None
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return getattr_, dir_
