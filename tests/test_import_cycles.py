"""No import cycle inside any package of shoal (issue 18, must-show 4).

``scripts/import_cycles.py`` lists the cycles among the children of every package over grimp's
graph, TYPE_CHECKING imports apart, a package's ``__init__`` counted as one of its modules;
the import-linter ``acyclic_siblings`` contracts that ``make lint`` runs check the siblings
alone. The mutation tests plant cycles in a copy of the source tree and check that they are
reported (and that a justified TYPE_CHECKING-only cycle, and only that, is let through).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "import_cycles.py"
SOURCE = ROOT / "src" / "shoal"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_no_package_of_shoal_has_an_import_cycle() -> None:
    bad, allowed = load_script().find_cycles("shoal")
    assert [cycle.describe() for cycle in bad] == []
    # None is needed today; one that appears must say why in its comment (checked above).
    assert [cycle.describe() for cycle in allowed] == []


@pytest.fixture
def copy_of_shoal(tmp_path: Path) -> Path:
    shutil.copytree(SOURCE, tmp_path / "shoal", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def plant(tree: Path, module: str, text: str) -> None:
    path = tree / "shoal" / module
    path.write_text(path.read_text() + "\n" + text)


def run_on(tree: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    # The copy comes first on sys.path, ahead of the editable install's src/.
    env = os.environ | {"PYTHONPATH": str(tree)}
    return subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def cycles_in(tree: Path) -> subprocess.CompletedProcess[str]:
    return run_on(tree, [sys.executable, str(SCRIPT)])


def test_the_unchanged_copy_has_no_cycle(copy_of_shoal: Path) -> None:
    # The mutants below differ from this only by what they plant.
    result = cycles_in(copy_of_shoal)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 import cycle(s) not allowed" in result.stdout


# name: ({module: text appended}, a pattern of the report's line; a cycle draws in every
# module on a path between its two ends, so the line may name more)
RUN_TIME_CYCLES: dict[str, tuple[dict[str, str], str]] = {
    # The log asks its manager back.
    "storage log and manager": (
        {"storage/log.py": "from shoal.storage.manager import LogManager  # noqa: E402, F401\n"},
        "shoal.storage: cycle among .*shoal.storage.log, shoal.storage.manager",
    ),
    # An import inside a function still closes a cycle; it only hides it.
    "broker and its handlers, lazily": (
        {
            "broker/broker.py": "def _produce_handler() -> object:\n"
            "    from shoal.broker.handlers.produce import handle_produce\n\n"
            "    return handle_produce\n"
        },
        "shoal.broker: cycle among shoal.broker.broker, shoal.broker.handlers",
    ),
    # Through the package's __init__, which re-exports the log (import-linter misses these).
    "the log and its package": (
        {"storage/log.py": "from shoal.storage import LogConfig  # noqa: E402, F401\n"},
        "shoal.storage: cycle among shoal.storage, .*shoal.storage.log",
    ),
    # Deeper down: two siblings inside a subpackage.
    "two handlers": (
        {
            "broker/handlers/heartbeat.py": "import shoal.broker.handlers.sync_group  # noqa\n",
            "broker/handlers/sync_group.py": "import shoal.broker.handlers.heartbeat  # noqa\n",
        },
        "shoal.broker.handlers: cycle among shoal.broker.handlers.heartbeat, "
        "shoal.broker.handlers.sync_group",
    ),
}


@pytest.mark.parametrize("name", sorted(RUN_TIME_CYCLES))
def test_a_planted_run_time_cycle_is_reported(copy_of_shoal: Path, name: str) -> None:
    planted, expected = RUN_TIME_CYCLES[name]
    for module, text in planted.items():
        plant(copy_of_shoal, module, text)
    result = cycles_in(copy_of_shoal)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(expected, result.stdout), result.stdout
    assert "TYPE_CHECKING-only" not in result.stdout


# The cycle issue 18 named: the flusher importing the log again, at run time, while the log
# names the flusher under TYPE_CHECKING (with no reason given).
FLUSHER_ASKS_THE_LOG = "from shoal.storage.log import PartitionLog  # noqa: E402, F401\n"


def test_the_flusher_asking_the_log_back_is_reported(copy_of_shoal: Path) -> None:
    plant(copy_of_shoal, "storage/flush.py", FLUSHER_ASKS_THE_LOG)
    result = cycles_in(copy_of_shoal)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "shoal.storage: TYPE_CHECKING-only cycle among shoal.storage.flush, shoal.storage.log"
        in result.stdout
    )


def test_the_import_linter_contract_catches_a_planted_cycle(copy_of_shoal: Path) -> None:
    # What CI's `make lint` runs must fail on the same mutant as the script.
    command = [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    assert run_on(copy_of_shoal, command).returncode == 0
    plant(copy_of_shoal, "storage/flush.py", FLUSHER_ASKS_THE_LOG)
    result = run_on(copy_of_shoal, command)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No cycles are allowed in shoal.storage." in result.stdout


TYPE_CHECKING_IMPORT = (
    "from typing import TYPE_CHECKING  # noqa: E402\n\n"
    "if TYPE_CHECKING:\n"
    "{comment}"
    "    from shoal.storage.manager import LogManager  # noqa: F401\n"
)


@pytest.mark.parametrize(
    ("comment", "allowed"),
    [
        ("", False),
        ("    # import cycle:\n", False),  # a marker with no reason is no reason
        ("    # a comment that is not the marker\n", False),
        ("    # import cycle: the manager hands the flusher to the log it made\n", True),
    ],
)
def test_a_type_checking_cycle_needs_a_reason(
    copy_of_shoal: Path, comment: str, allowed: bool
) -> None:
    # storage.manager imports storage.flush at run time; flush naming the manager back for
    # the type checker only closes a cycle that exists for mypy alone.
    plant(copy_of_shoal, "storage/flush.py", TYPE_CHECKING_IMPORT.format(comment=comment))
    result = cycles_in(copy_of_shoal)
    if allowed:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "allowed (justified TYPE_CHECKING import)" in result.stdout
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "shoal.storage: TYPE_CHECKING-only cycle among" in result.stdout
