"""``shoal docs asyncapi MODULE:ATTR``: the AsyncAPI 3.0 document of a shoal App.

The App is imported, not started: nothing connects to a broker, so the document can be built
in CI next to the code it describes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shoal.app.observability.asyncapi import document
from shoal.cli.common import CliError
from shoal.cli.run import add_app_dir_option, app_spec, load_app


def add_docs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    docs = sub.add_parser("docs", help="generate documentation of a shoal App")
    kinds = docs.add_subparsers(dest="docs_command", required=True, metavar="KIND")
    asyncapi = kinds.add_parser(
        "asyncapi", help="the AsyncAPI 3.0 document of an App", description=__doc__
    )
    asyncapi.add_argument("app", metavar="MODULE:ATTR", type=app_spec, help="e.g. billing.main:app")
    asyncapi.add_argument(
        "--format",
        choices=["json", "yaml"],
        default="json",
        help="json (default), or yaml when PyYAML is installed",
    )
    asyncapi.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    add_app_dir_option(asyncapi)
    asyncapi.set_defaults(run=run_asyncapi, command_parser=asyncapi)


def _yaml(doc: dict[str, Any]) -> str:
    try:
        import yaml  # type: ignore[import-untyped]  # optional; PyYAML ships no type hints
    except ImportError:
        raise CliError(
            "--format yaml needs PyYAML, which is not installed (pip install pyyaml); "
            "--format json needs nothing"
        ) from None
    # Keys in the order the document was built (info, servers, channels, ...), as written by
    # hand; AsyncAPI tools do not care, readers do.
    text: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return text


def run_asyncapi(args: argparse.Namespace) -> int:
    doc = document(load_app(args.app, args.app_dir))
    text = _yaml(doc) if args.format == "yaml" else json.dumps(doc, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return 0
