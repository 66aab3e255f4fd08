"""Run one atheris (libFuzzer) target: ``python -m tests.fuzz.runner TARGET [libFuzzer flags]``.

The target's module and every ``shoal`` module it imports are instrumented for coverage, so
libFuzzer keeps the inputs that reach new branches. Each target's ``one_input`` may raise only
the clear errors its layer promises; anything else escapes, and atheris reports it as a crash
with the input saved under ``-artifact_prefix``. A hang is caught by libFuzzer's ``-timeout``
(seconds per input) and an unbounded allocation by ``-rss_limit_mb``; a native abort (kio's
reader failing to reserve memory) kills the process, which the caller sees as a failure too.
"""

from __future__ import annotations

import importlib
import sys

import atheris

TARGETS = ("requests", "records", "registry", "admin", "sasl", "planted")
"""Module ``tests.fuzz.target_<name>`` for each; ``planted`` crashes on purpose (see there)."""


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.runner {{{','.join(TARGETS)}}} [libFuzzer flags]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["shoal", "tests.fuzz"]):
        target = importlib.import_module(f"tests.fuzz.target_{name}")
    atheris.Setup(sys.argv, target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
