"""``shoal docs asyncapi``: the document of an App in a user's module, and the error paths."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.cli import main
from tests.cli.support import SUBPROCESS_TIMEOUT_S, Result, shoal_script

APP_SOURCE = '''
from dataclasses import dataclass

from shoal.app import App


@dataclass
class Order:
    id: str
    amount: int


app = App("kafka://127.0.0.1:9", name="billing", version="2.0.0", description="Bills orders.")


@app.subscriber("orders", group="billing")
async def bill(order: Order) -> None:
    """Bill one order."""


def create_app() -> App:
    return app


not_an_app = 42
'''


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    """A module holding an App, with a name no other test uses (sys.modules is per process)."""
    name = f"docs_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    yield name
    sys.modules.pop(name, None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Result(code, out, err)


def test_json_document_on_stdout(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "docs", "asyncapi", f"{module}:app", "--app-dir", str(tmp_path))
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "billing"
    assert doc["servers"]["kafka"]["host"] == "127.0.0.1:9"
    assert doc["operations"]["bill"]["description"] == "Bill one order."
    assert doc["components"]["schemas"]["Order"]["required"] == ["id", "amount"]


def test_factory_and_out_file(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asyncapi.json"
    result = run(
        capsys, "docs", "asyncapi", f"{module}:create_app", "--app-dir", str(tmp_path),
        "--out", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out == ""
    assert json.loads(out.read_text())["info"]["version"] == "2.0.0"


def test_yaml_without_pyyaml_is_a_clear_error(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML is optional for users but installed here (the docs site needs it): the import
    # is made to fail as it does where PyYAML is missing, so this test always runs.
    monkeypatch.setitem(sys.modules, "yaml", None)
    result = run(
        capsys, "docs", "asyncapi", f"{module}:app", "--app-dir", str(tmp_path), "--format", "yaml"
    )
    assert result.code == 1
    assert "PyYAML" in result.err
    assert result.err.count("\n") == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:not_an_app", "is a int, not a shoal App"),
        ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ],
)
def test_loading_errors_are_one_line(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    spec = target.format(module=module)
    result = run(capsys, "docs", "asyncapi", spec, "--app-dir", str(tmp_path))
    assert result.code == 1
    assert message in result.err
    assert result.err.count("\n") == 1


def test_a_module_that_raises_on_import_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("x = 1\ny = 1 / 0\n"))
    result = run(capsys, "docs", "asyncapi", f"{name}:app", "--app-dir", str(tmp_path))
    assert result.code == 1
    assert "ZeroDivisionError: division by zero" in result.err
    assert f"{name}.py:2)" in result.err
    assert "Traceback" not in result.err


def test_bad_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "docs", "asyncapi", "just_a_module")
    assert result.code == 2
    assert "expected MODULE:ATTR" in result.err


def test_the_script_imports_from_the_current_directory(module: str, tmp_path: Path) -> None:
    # The console script's sys.path does not hold the current directory; shoal adds it.
    completed = subprocess.run(
        [shoal_script(), "docs", "asyncapi", f"{module}:app"],
        cwd=tmp_path,
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["info"]["title"] == "billing"
