"""The documentation site builds, and its generated pages are current (issue 21).

``mkdocs build --strict`` is what ``make docs`` runs: any warning fails it, among them a link to
a missing page or anchor and a page left out of mkdocs.yml's nav. It takes about a second, so
the test runs the real build instead of a copy of its checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from examples.market import asyncapi_page as market_asyncapi_page
from examples.orders import asyncapi_page

from shoal.cli import cli_reference
from shoal.cli.settings_reference import render, setting_docs
from tests.docs.blocks import DOCS, REPO, pages

SETTINGS_PAGE = DOCS / "settings.md"
BUILD_TIMEOUT_S = 120


def test_settings_reference_is_current() -> None:
    assert SETTINGS_PAGE.read_text(encoding="utf-8") == render(), (
        "docs/settings.md differs from shoal.server.settings: run `make docs` (or "
        "`python -m shoal.cli.settings_reference docs/settings.md`) and commit the page"
    )


def test_cli_reference_is_current() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == cli_reference.render(), (
        "docs/cli.md differs from the shoal parsers: run `make docs` (or "
        "`python -m shoal.cli.cli_reference docs/cli.md`) and commit the page"
    )


def test_orders_asyncapi_page_is_current() -> None:
    assert (DOCS / "asyncapi-orders.md").read_text(encoding="utf-8") == asyncapi_page.render(), (
        "docs/asyncapi-orders.md differs from examples/orders: run `make docs` (or `python -m "
        "examples.orders.asyncapi_page docs/asyncapi-orders.md`) and commit the page"
    )


def test_market_asyncapi_page_is_current() -> None:
    page = (DOCS / "asyncapi-market.md").read_text(encoding="utf-8")
    assert page == market_asyncapi_page.render(), (
        "docs/asyncapi-market.md differs from examples/market: run `make docs` (or `python -m "
        "examples.market.asyncapi_page docs/asyncapi-market.md`) and commit the page"
    )


def test_market_asyncapi_document_is_whole() -> None:
    """Every reference resolves, every topic the services touch is a channel, and each Avro
    payload is a schema fastavro accepts."""
    import fastavro

    page = (DOCS / "asyncapi-market.md").read_text(encoding="utf-8")
    doc = yaml.safe_load(page.split("```yaml\n", 1)[1].split("```", 1)[0])

    def resolve(ref: str) -> object:
        node: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
            node = node[part]
        return node

    addresses = {c["address"] for c in doc["channels"].values()}
    for operation in doc["operations"].values():
        resolve(operation["channel"]["$ref"])
        assert operation["messages"], operation
        for message in operation["messages"]:
            resolve(resolve(message["$ref"])["$ref"])  # type: ignore[index]
    for channel in doc["channels"].values():
        for message in channel["messages"].values():
            resolve(message["$ref"])
    assert {"market.trades", "market.quotes", "market.bars", "market.alerts"} <= addresses
    assert "market.quotes.latest" in addresses  # the table's changelog
    avro = [m for m in doc["components"]["messages"].values() if "schemaFormat" in m["payload"]]
    assert {m["name"] for m in avro} == {"Trade", "Quote", "Bar", "Alert"}
    for message in avro:
        fastavro.parse_schema(message["payload"]["schema"])


def test_every_setting_is_documented_in_the_code() -> None:
    bare = [doc.name for doc in setting_docs() if not doc.description]
    assert not bare, f"give these fields of Settings a docstring (the reference shows it): {bare}"


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def names(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [n for value in node.values() for n in names(value)]
        if isinstance(node, list):
            return [n for item in node for n in names(item)]
        return []

    assert sorted(names(config["nav"])) == pages()


@pytest.mark.integration
def test_site_builds_strict_with_no_warning(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "settings" / "index.html").exists()


@pytest.mark.integration
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check can fail: a page linking to an anchor that does not exist breaks the build."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[there](other.md#nowhere)\n")
    (docs / "other.md").write_text("# Other\n")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    config.update(docs_dir=str(docs), site_dir=str(tmp_path / "site"))
    config["nav"] = ["index.md", "other.md"]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict"],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode != 0
    assert "#nowhere" in done.stderr


def test_the_api_reference_names_every_public_name() -> None:
    """docs/api.md renders each public name's docstring; a name added to ``shoal.__all__`` or
    ``shoal.app.__all__`` without its entry there would be missing from the reference."""
    import shoal
    import shoal.app

    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    documented = {
        line.split()[1].rsplit(".", 1)[-1] for line in text.splitlines() if line.startswith(":::")
    }
    public = (set(shoal.__all__) - {"__version__"}) | set(shoal.app.__all__)
    assert public - documented == set()
