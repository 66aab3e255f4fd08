"""``shoal schema``: register, get, list, check, delete schemas and set compatibility levels.

The commands speak Confluent Schema Registry's REST API, so they work against shoal's built-in
registry (the broker's HTTP port, the default), ``shoal registry`` and Confluent's or Karapace's
registries alike. A refusal is reported with the registry's own error code, e.g.
``subject 'x' not found (40401)``. ``--format json`` is for programs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

from shoal.cli.common import DEFAULT_TIMEOUT_S, CliError, UsageError, positive_float

REGISTRY_URL_ENV: Final = "SHOAL_REGISTRY_URL"
DEFAULT_REGISTRY_URL: Final = "http://127.0.0.1:8080"
"""The broker's HTTP face, which serves the registry at its root."""

CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
SCHEMA_TYPES: Final = ("AVRO", "JSON", "PROTOBUF")
COMPATIBILITY_LEVELS: Final = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
_TYPE_BY_SUFFIX: Final = {".avsc": "AVRO", ".json": "JSON", ".proto": "PROTOBUF"}

# Confluent's codes for "already soft deleted": a permanent delete skips the soft step then.
_SUBJECT_SOFT_DELETED: Final = 40404
_VERSION_SOFT_DELETED: Final = 40406


def add_schema_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schema = sub.add_parser(
        "schema",
        help="register, get, list, check and delete schemas in a schema registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")

    register = actions.add_parser(
        "register", help="register a schema under a subject; prints its id"
    )
    register.add_argument("subject")
    _add_schema_file_options(register)
    register.set_defaults(run=run_register, command_parser=register)

    get = actions.add_parser("get", help="print a schema, by subject and version or by id")
    get.add_argument("subject", nargs="?")
    get.add_argument(
        "--version", type=_version, default="latest", help="a version number or latest (default)"
    )
    get.add_argument("--id", type=int, dest="schema_id", help="the schema with this global id")
    get.add_argument(
        "--format",
        choices=["schema", "json"],
        default="schema",
        help="the schema text (default) or the registry's full record as JSON",
    )
    get.set_defaults(run=run_get, command_parser=get)

    listing = actions.add_parser("list", help="list subjects (or, with --versions, versions)")
    listing.add_argument("--prefix", default="", help="only subjects that start with this")
    listing.add_argument("--deleted", action="store_true", help="include soft-deleted ones")
    listing.add_argument("--versions", action="store_true", help="one line per subject and version")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    check = actions.add_parser(
        "check",
        help="test a schema against a subject's compatibility level",
        description="Exit 0 if the schema is compatible with the subject, 1 (with the "
        "registry's reasons) if not.",
    )
    check.add_argument("subject")
    _add_schema_file_options(check)
    check.add_argument(
        "--version",
        type=_version,
        default=None,
        help="check against this version only (default: as registering would, per the "
        "subject's compatibility level)",
    )
    check.set_defaults(run=run_check, command_parser=check)

    delete = actions.add_parser("delete", help="delete a subject or one of its versions")
    delete.add_argument("subject")
    delete.add_argument("--version", type=_version, help="only this version (or latest)")
    delete.add_argument(
        "--permanent",
        action="store_true",
        help="delete for good, schema text included (soft-deletes first when needed)",
    )
    delete.set_defaults(run=run_delete, command_parser=delete)

    config = actions.add_parser(
        "config", help="show or set the compatibility level, global or of a subject"
    )
    config.add_argument("subject", nargs="?", help="a subject (default: the global level)")
    config.add_argument(
        "--set",
        dest="level",
        type=str.upper,
        choices=COMPATIBILITY_LEVELS,
        metavar="LEVEL",
        help="set the level: " + ", ".join(COMPATIBILITY_LEVELS),
    )
    config.set_defaults(run=run_config, command_parser=config)

    for parser in (register, get, listing, check, delete, config):
        _add_registry_options(parser)


def _add_schema_file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", "-f", required=True, help="the schema file (- for stdin)")
    parser.add_argument(
        "--type",
        dest="schema_type",
        type=str.upper,
        choices=SCHEMA_TYPES,
        metavar="TYPE",
        help="AVRO, JSON or PROTOBUF (default: from the file's suffix .avsc, .json, .proto; "
        "else AVRO)",
    )
    parser.add_argument(
        "--reference",
        dest="references",
        metavar="NAME=SUBJECT:VERSION",
        type=_reference,
        action="append",
        default=[],
        help="a schema this one references, e.g. common.avsc=common-value:1 (repeatable)",
    )


def _add_registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--registry-url",
        metavar="URL",
        default=os.environ.get(REGISTRY_URL_ENV) or DEFAULT_REGISTRY_URL,
        help=f"schema registry address (default: ${REGISTRY_URL_ENV} or {DEFAULT_REGISTRY_URL})",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up on an unresponsive registry after this long (default {DEFAULT_TIMEOUT_S:g})",
    )


def _version(text: str) -> str:
    if text == "latest" or (text.isdigit() and int(text) > 0):
        return text
    raise argparse.ArgumentTypeError(f"expected a positive version number or latest, got {text!r}")


def _reference(text: str) -> dict[str, Any]:
    name, sep, rest = text.partition("=")
    subject, colon, version = rest.rpartition(":")
    if not (sep and name and colon and subject and version.isdigit()):
        raise argparse.ArgumentTypeError(f"expected NAME=SUBJECT:VERSION, got {text!r}")
    return {"name": name, "subject": subject, "version": int(version)}


class Registry:
    """A thin client of Confluent's REST API; every failure becomes a one-line :class:`CliError`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url: str = args.registry_url.rstrip("/")
        self.timeout_s: float = args.timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = httpx.request(
                method,
                self.url + path,
                params=params,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
                timeout=self.timeout_s,
            )
        except httpx.TimeoutException:
            raise CliError(
                f"no answer from a schema registry at {self.url} within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach a schema registry at {self.url}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            if data is None:
                raise CliError(f"{self.url}{path} did not answer JSON; is it a schema registry?")
            return data
        raise _registry_error(response.status_code, data, self.url + path)


class RegistryRefusal(CliError):
    """An error answer from the registry; ``code`` is Confluent's error code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _registry_error(status: int, data: Any, url: str) -> CliError:
    if isinstance(data, dict) and "message" in data:
        code = data.get("error_code", status)
        message = str(data["message"]).strip().rstrip(".")
        # "Subject 'x' not found." reads as "subject 'x' not found" after "shoal schema get: ".
        if len(message) > 1 and message[0].isupper() and message[1].islower():
            message = message[0].lower() + message[1:]
        return RegistryRefusal(f"{message} ({code})", code if isinstance(code, int) else status)
    return CliError(f"HTTP {status} from {url}; is it a schema registry?")


def _segment(text: str) -> str:
    return quote(text, safe="")


def _schema_body(args: argparse.Namespace) -> dict[str, Any]:
    path: str = args.file
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read schema file {path}: {exc}") from None
    if not text.strip():
        raise CliError(f"schema file {path} is empty")
    schema_type: str = args.schema_type or _TYPE_BY_SUFFIX.get(Path(path).suffix.lower(), "AVRO")
    body: dict[str, Any] = {"schema": text}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    if args.references:
        body["references"] = args.references
    return body


def run_register(args: argparse.Namespace) -> int:
    registry = Registry(args)
    answer = registry.request(
        "POST", f"/subjects/{_segment(args.subject)}/versions", body=_schema_body(args)
    )
    print(answer["id"])
    return 0


def run_get(args: argparse.Namespace) -> int:
    if (args.subject is None) == (args.schema_id is None):
        raise UsageError("give either a SUBJECT or --id, not both or neither")
    registry = Registry(args)
    if args.schema_id is not None:
        record = registry.request("GET", f"/schemas/ids/{args.schema_id}")
        record = {"id": args.schema_id, **record}
    else:
        record = registry.request(
            "GET", f"/subjects/{_segment(args.subject)}/versions/{args.version}"
        )
    if args.format == "json":
        print(json.dumps(record))
    else:
        print(record["schema"])
    return 0


def run_list(args: argparse.Namespace) -> int:
    registry = Registry(args)
    params = {"deleted": "true"} if args.deleted else {}
    if args.prefix:
        params["subjectPrefix"] = args.prefix
    subjects: list[str] = sorted(registry.request("GET", "/subjects", params=params))
    if not args.versions:
        if args.format == "json":
            print(json.dumps(subjects))
        else:
            for subject in subjects:
                print(subject)
        return 0
    versions: dict[str, list[int]] = {}
    deleted = {"deleted": "true"} if args.deleted else {}
    for subject in subjects:
        try:
            versions[subject] = registry.request(
                "GET", f"/subjects/{_segment(subject)}/versions", params=deleted
            )
        except RegistryRefusal as exc:
            if exc.code == 40401:  # deleted between the two requests
                continue
            raise
    if args.format == "json":
        print(json.dumps(versions))
    else:
        for subject, numbers in versions.items():
            for number in numbers:
                print(f"{subject}\t{number}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    registry = Registry(args)
    path = f"/compatibility/subjects/{_segment(args.subject)}/versions"
    if args.version is not None:
        path += f"/{args.version}"
    answer = registry.request("POST", path, params={"verbose": "true"}, body=_schema_body(args))
    if answer.get("is_compatible"):
        print("compatible")
        return 0
    print("incompatible")
    for message in answer.get("messages") or []:
        print(f"  {message}")
    return 1


def run_delete(args: argparse.Namespace) -> int:
    registry = Registry(args)
    path = f"/subjects/{_segment(args.subject)}"
    if args.version is not None:
        path += f"/versions/{args.version}"
    already_soft = _VERSION_SOFT_DELETED if args.version is not None else _SUBJECT_SOFT_DELETED
    if args.permanent and args.version == "latest":
        # "latest" of a soft-deleted subject is ambiguous; name the number for a hard delete.
        raise UsageError("--permanent needs a version number, not latest")
    deleted: Any = None
    try:
        deleted = registry.request("DELETE", path)
    except RegistryRefusal as exc:
        if not (args.permanent and exc.code == already_soft):
            raise
    if args.permanent:
        deleted = registry.request("DELETE", path, params={"permanent": "true"})
    numbers = deleted if isinstance(deleted, list) else [deleted]
    kind = "permanently" if args.permanent else "soft"
    print(
        f"Deleted ({kind}) subject {args.subject} version"
        f"{'s' if len(numbers) != 1 else ''} {', '.join(str(n) for n in numbers)}."
    )
    return 0


def run_config(args: argparse.Namespace) -> int:
    registry = Registry(args)
    path = "/config" if args.subject is None else f"/config/{_segment(args.subject)}"
    if args.level is not None:
        answer = registry.request("PUT", path, body={"compatibility": args.level})
        print(answer.get("compatibility", args.level))
        return 0
    params = {} if args.subject is None else {"defaultToGlobal": "true"}
    answer = registry.request("GET", path, params=params)
    print(answer["compatibilityLevel"])
    return 0
