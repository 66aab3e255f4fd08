"""The package a user installs works: ``pip install`` of the wheel into a fresh virtual
environment without dev extras gives a ``shoal`` that starts a broker, round-trips records
through the CLI, runs the orders example on ``embedded://``, runs ``shoal demo market`` and
names the extra to install for a transport whose client library is missing.

The sdist is covered through the wheel: ``python -m build`` builds the wheel *from* the sdist,
in an isolated environment, as ``pip install`` of the sdist does, so a file the sdist misses
breaks the wheel tested here. (Installing the sdist too ran every test twice on the same
package: about a minute of CI.)

The source tree is never on the path of what runs here (see :mod:`tests.packaging.installed`).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.installed import (
    REPO,
    Artifacts,
    Installed,
    build,
    install,
    project_version,
    shoal_broker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EXAMPLE_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(
    artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("installed-wheel")
    yield install(artifacts.wheel, work)
    shutil.rmtree(work, ignore_errors=True)


def test_the_wheel_holds_shoal_and_its_metadata_only(artifacts: Artifacts) -> None:
    # setuptools warns about a TOML-table `license` (deprecated; builds fail from 2027).
    assert "project.license" not in artifacts.build_output
    version = project_version()
    assert artifacts.wheel.name.startswith(f"shoal-{version}-")
    with zipfile.ZipFile(artifacts.wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"shoal-{version}.dist-info/METADATA").decode()
    outside = [n for n in names if not n.startswith(("shoal/", f"shoal-{version}.dist-info/"))]
    assert outside == []  # no tests/, examples/ or bench/ in a user's site-packages
    assert "shoal/py.typed" in names
    for page in ("index.html", "console.js", "schema_codec.js", "console.css"):  # the web console
        assert f"shoal/server/console/static/{page}" in names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "Requires-Dist: confluent-kafka>=2.5" in metadata.splitlines()


def test_shoal_version_runs_from_the_installed_package(installed: Installed) -> None:
    assert installed.run(installed.shoal, "--version").stdout.strip() == (
        f"shoal {project_version()}"
    )
    location = Path(installed.python_code("import shoal; print(shoal.__file__)").strip())
    assert location.is_relative_to(installed.venv), location
    assert not location.is_relative_to(REPO), location
    # The web console's pages come with the package.
    code = "import os; from shoal.server.console import STATIC_DIR as d; print(*os.listdir(d))"
    pages = sorted(installed.python_code(code).split())
    assert pages == ["console.css", "console.js", "index.html", "schema_codec.js"]


def test_cli_round_trip_through_the_installed_broker(installed: Installed) -> None:
    records = ["first record", "second record", "third record"]
    with shoal_broker(installed, installed.scratch / "broker-data") as broker:
        client = ["-b", broker.bootstrap]
        installed.run(installed.shoal, "topic", "create", "round-trip", *client)
        installed.run(installed.shoal, "produce", "round-trip", *client, stdin="\n".join(records))
        consumed = installed.run(installed.shoal, "consume", "round-trip", *client, "-e", "-q")
    assert consumed.stdout.splitlines() == records


# One schema per format: each format's parser is a runtime dependency (fastavro and avro,
# jsonschema, protobuf with grpcio-tools' bundled protoc for .proto text).
SCHEMAS = {
    "order.avsc": '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}]}',
    "order.json": '{"type": "object", "properties": {"id": {"type": "string"}}}',
    "order.proto": 'syntax = "proto3";\nmessage Order { string id = 1; }\n',
}


def test_schema_registry_of_the_installed_broker_takes_every_format(installed: Installed) -> None:
    for name, text in SCHEMAS.items():
        (installed.scratch / name).write_text(text)
    with shoal_broker(installed, installed.scratch / "registry-data") as broker:
        registry = ["--registry-url", broker.http_url]
        ids = [
            installed.run(installed.shoal, "schema", "register", f"orders-{name}", "-f", name,
                          *registry).stdout.strip()
            for name in SCHEMAS
        ]  # fmt: skip
        listed = installed.run(installed.shoal, "schema", "list", *registry).stdout.split()
        proto = installed.run(
            installed.shoal, "schema", "get", "orders-order.proto", *registry
        ).stdout
    assert ids == ["1", "2", "3"]
    assert sorted(listed) == sorted(f"orders-{name}" for name in SCHEMAS)
    assert "message Order" in proto


def test_orders_example_on_embedded_broker_uses_the_installed_shoal(installed: Installed) -> None:
    # examples/ is not in the package: run a copy of it, from a directory holding nothing else,
    # so that `import shoal` can only find the installed one.
    app_dir = installed.scratch / "orders-app"
    shutil.copytree(
        REPO / "examples", app_dir / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    location = installed.python_code("import shoal; print(shoal.__file__)", cwd=app_dir)
    assert Path(location.strip()).is_relative_to(installed.venv), location
    ran = installed.run(
        installed.python, "-m", "examples.orders", cwd=app_dir, timeout_s=EXAMPLE_TIMEOUT_S
    )
    assert "All orders reached their expected end state." in ran.stdout, ran.stdout


def test_shoal_demo_market_runs_from_the_installed_package(installed: Installed) -> None:
    """Issue 20: ``shoal demo`` needs no checkout: the examples ride in the package."""
    code = "import shoal.demo as d; print(d.example_root())"
    root = Path(installed.python_code(code).strip())
    assert root.is_relative_to(installed.venv), root
    assert (root / "examples" / "market" / "avro").is_dir()
    ran = installed.run(
        installed.shoal, "demo", "market", "--seconds", "5", timeout_s=EXAMPLE_TIMEOUT_S
    )
    lines = ran.stdout.splitlines()
    assert any("bars service" in line for line in lines), ran.stdout  # the live status lines
    assert re.search(r"Bars published: \{'1s': [1-9]", ran.stdout), ran.stdout
    assert "Latency from exchange timestamp" in ran.stdout, ran.stdout


# The import each transport's client library gives; all must be absent without extras.
EXTRAS = {"amqp": "aio_pika", "redis": "redis", "nats": "nats"}
MISSING_EXTRA_CHECK = """
import importlib.util, sys
from shoal.app import App
from shoal.app.extras import MissingExtraError
extra, module, url = sys.argv[1:]
assert importlib.util.find_spec(module) is None, f"{module} is installed without shoal[{extra}]"
try:
    App(url)
except MissingExtraError as exc:
    print(exc)
else:
    raise SystemExit(f"App({url!r}) started without {module}")
"""


@pytest.mark.parametrize(
    ("extra", "url"),
    [("amqp", "amqp://127.0.0.1:5672/"), ("redis", "redis://127.0.0.1:6379"), ("nats", "nats://x")],
)
def test_a_transport_without_its_extra_names_the_extra_to_install(
    installed: Installed, extra: str, url: str
) -> None:
    message = installed.run(
        installed.python, "-c", MISSING_EXTRA_CHECK, extra, EXTRAS[extra], url
    ).stdout
    assert message.strip() == (
        f"the {url.split(':')[0]}:// transport needs the {EXTRAS[extra]!r} package, which is not "
        f"installed: pip install 'shoal[{extra}]'"
    )
