"""What the examples' generated AsyncAPI pages (docs/asyncapi-*.md) share: a document's
section (its title, description, a table of its operations and the document as YAML) and the
command that writes a page."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints


def _ref_name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


def operations_table(doc: dict[str, Any]) -> list[str]:
    """A Markdown table of a document's operations."""
    rows = [
        "| Action | Topic | Consumer group | Message |",
        "| --- | --- | --- | --- |",
    ]
    for operation in doc["operations"].values():
        channel = doc["channels"][_ref_name(operation["channel"])]
        group = operation.get("x-shoal", {}).get("group", "")
        messages = ", ".join(_ref_name(m) for m in operation.get("messages", []))
        rows.append(
            f"| {operation['action']} | `{channel['address']}` | "
            f"{f'`{group}`' if group else ''} | {messages} |"
        )
    return rows


def document_section(doc: dict[str, Any]) -> list[str]:
    """One document on a page: a heading with its title, its description, the table of its
    operations, then the document in a YAML block."""
    info = doc["info"]
    out = [f"## {info['title']}\n"]
    if info.get("description"):
        out.append(f"{info['description']}\n")
    out.append("\n".join(operations_table(doc)) + "\n")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    out.append(f"```yaml\n{text}```\n")
    return out


def write_page(argv: list[str], module: str, render: Callable[[], str]) -> int:
    """``python -m MODULE FILE``: the page ``render`` gives, written to FILE."""
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m {module} FILE\n")
        return 2
    Path(argv[0]).write_text(render(), encoding="utf-8")
    return 0
