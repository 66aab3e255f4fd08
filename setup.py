"""What pyproject.toml cannot say to setuptools: the worked examples ride along in the wheel.

``shoal demo market|orders`` runs the repository's examples from an installed package, but
``examples/`` is the repository's, written to be read and copied, not a package of its own on
a user's path. So the build copies it into the package, as ``shoal/demo/bundled/examples``,
where :mod:`shoal.demo` finds it (MANIFEST.in puts it into the sdist the wheel is built from).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLES = ("market", "orders")
HERE = Path(__file__).resolve().parent


class BuildPyWithExamples(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the checkout's examples/ in place
        target = Path(self.build_lib) / "shoal" / "demo" / "bundled" / "examples"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy2(HERE / "examples" / "__init__.py", target / "__init__.py")
        for name in EXAMPLES:
            shutil.copytree(
                HERE / "examples" / name,
                target / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )


setup(cmdclass={"build_py": BuildPyWithExamples})
