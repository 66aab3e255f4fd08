"""The worked examples as demos (``shoal demo market|orders``), from an installed package.

The examples live in the repository's ``examples/`` package, written to be read and copied;
they are not a package of their own on a user's path. The wheel carries a copy of them under
``shoal/demo/bundled/examples`` (``setup.py`` puts it there at build time), and this module
imports them from there; in a source checkout it takes the checkout's ``examples/``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final, cast

EXAMPLES: Final = ("market", "orders")
BUNDLED: Final = Path(__file__).resolve().parent / "bundled"
"""Where the wheel's copy of ``examples/`` is (the directory that holds it)."""
CHECKOUT: Final = Path(__file__).resolve().parents[3]
"""The repository root, when this is a source checkout (an editable install)."""


class DemoUnavailable(Exception):
    """The example's code is in neither place (a package built without it)."""


def example_root() -> Path | None:
    """The directory holding the ``examples`` package: the wheel's copy, else a checkout's."""
    for root in (BUNDLED, CHECKOUT):
        if all((root / "examples" / name / "__main__.py").is_file() for name in EXAMPLES):
            return root
    return None


def load(name: str) -> ModuleType:
    """``examples.<name>.__main__`` (its ``main(argv)`` runs the example)."""
    if name not in EXAMPLES:
        raise ValueError(f"no example {name!r}: one of {', '.join(EXAMPLES)}")
    root = example_root()
    if root is None:
        raise DemoUnavailable(
            f"the examples are not in this installation of shoal ({BUNDLED} is missing): "
            "install shoal from its wheel or run from a source checkout"
        )
    loaded = sys.modules.get("examples")
    if loaded is not None and Path(loaded.__path__[0]).resolve() != (root / "examples"):
        raise DemoUnavailable(
            f"another 'examples' package is already imported ({loaded.__path__[0]})"
        )
    if str(root) not in sys.path:
        # First: a directory named examples/ in the working directory must not shadow it.
        sys.path.insert(0, str(root))
    return importlib.import_module(f"examples.{name}.__main__")


def run(name: str, argv: Sequence[str]) -> int:
    """Run example ``name`` as ``python -m examples.<name> ARGV`` would; its exit code."""
    main = cast(Callable[[list[str]], int], load(name).main)
    return main(list(argv))
