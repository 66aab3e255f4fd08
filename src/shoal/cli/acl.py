"""``shoal acl``: add, list and remove ACLs, with the flags of Kafka's ``kafka-acls.sh``.

It is an admin client (confluent-kafka's CreateAcls/DescribeAcls/DeleteAcls), so it works
against Apache Kafka as against shoal. As in kafka-acls.sh:

- ``add`` needs a principal (``--allow-principal`` and/or ``--deny-principal``, repeatable),
  a resource (``--topic``, ``--group``, ``--transactional-id``, each repeatable, or
  ``--cluster``) and operations (``--operation``, repeatable, default All); hosts default to
  ``*``. ``--producer`` (Write, Describe and Create on the topics; Write and Describe on the
  transactional ids; IdempotentWrite on the cluster with ``--idempotent``) and ``--consumer``
  (Read and Describe on the topics, Read on the groups) are the usual bundles.
- ``list`` shows the ACLs of the resources named (every ACL without one), optionally only a
  principal's; ``--resource-pattern-type`` may then also be ``any`` or ``match``.
- ``remove`` deletes the ACLs matching the flags: without a principal, every ACL of the named
  resources. kafka-acls.sh asks for confirmation unless ``--force``; shoal never prompts, and
  accepts ``--force`` so that scripts written for it run unchanged.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaException

# These names are the admin module's documented API; it imports them without __all__, which
# mypy's strict mode reads as private. Their types still come through.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from shoal.cli.common import ClientContext, UsageError, add_client_options

CLUSTER_NAME: Final = "kafka-cluster"
_OPERATIONS: Final = {
    op.name.replace("_", ""): op
    for op in AclOperation
    if op not in (AclOperation.UNKNOWN, AclOperation.ANY)
}
"""Kafka's operation names without their separators: Read, IdempotentWrite, DESCRIBE_CONFIGS
and describe-configs all name the same operation, as kafka-acls.sh accepts them."""


def _operation(text: str) -> AclOperation:
    key = text.replace("_", "").replace("-", "").upper()
    if key not in _OPERATIONS:
        names = ", ".join(sorted(op.name.title().replace("_", "") for op in _OPERATIONS.values()))
        raise argparse.ArgumentTypeError(f"unknown operation {text!r}; one of: {names}")
    return _OPERATIONS[key]


def add_acl_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acl = sub.add_parser("acl", help="add, list and remove ACLs (as kafka-acls.sh)")
    actions = acl.add_subparsers(dest="acl_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add ACLs")
    _resource_options(add, filters=False)
    _entry_options(add)
    add.add_argument("--producer", action="store_true", help="the rights a producer needs")
    add.add_argument("--consumer", action="store_true", help="the rights a consumer needs")
    add.add_argument(
        "--idempotent", action="store_true", help="with --producer: IdempotentWrite too"
    )
    add.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    add.set_defaults(run=run_add, command_parser=add)
    listing = actions.add_parser("list", help="list ACLs")
    _resource_options(listing, filters=True)
    listing.add_argument("--principal", action="append", default=[], help="only this principal's")
    listing.add_argument("--format", choices=["text", "json"], default="text")
    listing.set_defaults(run=run_list, command_parser=listing)
    remove = actions.add_parser("remove", help="remove the ACLs the flags match")
    _resource_options(remove, filters=True)
    _entry_options(remove)
    remove.add_argument("--force", action="store_true", help="accepted; shoal never prompts")
    remove.set_defaults(run=run_remove, command_parser=remove)


def _resource_options(parser: argparse.ArgumentParser, *, filters: bool) -> None:
    group = parser.add_argument_group("resources")
    group.add_argument("--topic", action="append", default=[], metavar="NAME")
    group.add_argument("--group", action="append", default=[], metavar="NAME")
    group.add_argument("--transactional-id", action="append", default=[], metavar="ID")
    group.add_argument("--cluster", action="store_true", help="the cluster resource")
    choices = ["literal", "prefixed", *(["any", "match"] if filters else [])]
    group.add_argument(
        "--resource-pattern-type",
        type=str.lower,
        choices=choices,
        default="literal",
        help="how the names match (default literal; a topic or group name '*' is every one)",
    )
    add_client_options(parser)


def _entry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("entries")
    group.add_argument("--allow-principal", action="append", default=[], metavar="TYPE:NAME")
    group.add_argument("--deny-principal", action="append", default=[], metavar="TYPE:NAME")
    group.add_argument("--allow-host", action="append", default=[], metavar="HOST")
    group.add_argument("--deny-host", action="append", default=[], metavar="HOST")
    group.add_argument(
        "--operation", action="append", default=[], type=_operation, metavar="OPERATION"
    )


@dataclass(frozen=True)
class _Resource:
    kind: ResourceType
    name: str


def _resources(args: argparse.Namespace) -> list[_Resource]:
    found = [_Resource(ResourceType.TOPIC, name) for name in args.topic]
    found += [_Resource(ResourceType.GROUP, name) for name in args.group]
    found += [_Resource(ResourceType.TRANSACTIONAL_ID, name) for name in args.transactional_id]
    if args.cluster:
        found.append(_Resource(ResourceType.BROKER, CLUSTER_NAME))
    return found


def _pattern(args: argparse.Namespace) -> ResourcePatternType:
    return ResourcePatternType[args.resource_pattern_type.upper()]


def _entries(args: argparse.Namespace) -> list[tuple[str, str, AclPermissionType]]:
    """(principal, host, permission) for every principal and host given."""
    entries = []
    for principals, hosts, permission in (
        (args.allow_principal, args.allow_host, AclPermissionType.ALLOW),
        (args.deny_principal, args.deny_host, AclPermissionType.DENY),
    ):
        for principal in principals:
            if ":" not in principal:
                raise UsageError(f"a principal is TYPE:NAME, e.g. User:alice, not {principal!r}")
            entries += [(principal, host, permission) for host in hosts or ["*"]]
    return entries


def _rights(args: argparse.Namespace) -> list[tuple[_Resource, AclOperation]]:
    """The (resource, operation) pairs ``add`` grants or denies."""
    resources = _resources(args)
    if args.producer or args.consumer:
        return _bundles(args, resources)
    if args.idempotent:
        raise UsageError("--idempotent goes with --producer")
    if not resources:
        raise UsageError("name a resource: --topic, --group, --transactional-id or --cluster")
    operations = args.operation or [AclOperation.ALL]
    return [(r, op) for r in resources for op in operations]


def _bundles(args: argparse.Namespace, resources: list[_Resource]) -> list[tuple[_Resource, Any]]:
    topics = [r for r in resources if r.kind == ResourceType.TOPIC]
    if not topics:
        raise UsageError("--producer and --consumer need at least one --topic")
    rights: list[tuple[_Resource, AclOperation]] = []
    if args.producer:
        ops = (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE)
        rights += [(t, op) for t in topics for op in ops]
        for r in resources:
            if r.kind == ResourceType.TRANSACTIONAL_ID:
                rights += [(r, AclOperation.WRITE), (r, AclOperation.DESCRIBE)]
        if args.idempotent:
            rights.append(
                (_Resource(ResourceType.BROKER, CLUSTER_NAME), AclOperation.IDEMPOTENT_WRITE)
            )
    if args.consumer:
        groups = [r for r in resources if r.kind == ResourceType.GROUP]
        if not groups:
            raise UsageError("--consumer needs a --group")
        rights += [(t, op) for t in topics for op in (AclOperation.READ, AclOperation.DESCRIBE)]
        rights += [(g, AclOperation.READ) for g in groups]
    return rights


def run_add(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    entries = _entries(args)
    if not entries:
        raise UsageError("name a principal: --allow-principal or --deny-principal")
    pattern = _pattern(args)
    bindings = [
        AclBinding(r.kind, r.name, pattern, principal, host, op, permission)
        for r, op in _rights(args)
        for principal, host, permission in entries
    ]
    admin = AdminClient(ctx.config())
    try:
        futures = admin.create_acls(bindings, request_timeout=ctx.timeout_s)
        for future in futures.values():
            future.result()
    except KafkaException as exc:
        raise ctx.error(exc, "add ACLs", admin) from None
    for line in _describe_lines(bindings):
        print(line)
    return 0


def _filters(args: argparse.Namespace, entries: bool) -> list[AclBindingFilter]:
    resources: list[_Resource | None] = [*_resources(args)] or [None]
    pattern = _pattern(args) if any(resources) else ResourcePatternType.ANY
    wanted: list[tuple[str | None, str | None, AclPermissionType]] = [
        (None, None, AclPermissionType.ANY)
    ]
    if entries:
        given = [
            (principal, host, permission)
            for principals, hosts, permission in (
                (args.allow_principal, args.allow_host, AclPermissionType.ALLOW),
                (args.deny_principal, args.deny_host, AclPermissionType.DENY),
            )
            for principal in principals
            for host in hosts or [None]
        ]
        wanted = list(given) or wanted
    elif args.principal:
        wanted = [(p, None, AclPermissionType.ANY) for p in args.principal]
    operations = (args.operation if entries else []) or [AclOperation.ANY]
    # confluent-kafka's stubs say str where its filters take None for "any".
    make: Any = AclBindingFilter
    return [
        make(
            r.kind if r else ResourceType.ANY,
            r.name if r else None,
            pattern,
            principal,
            host,
            op,
            permission,
        )
        for r in resources
        for principal, host, permission in wanted
        for op in operations
    ]


def run_list(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    admin = AdminClient(ctx.config())
    found: dict[Any, None] = {}
    try:
        for acl_filter in _filters(args, entries=False):
            found.update(dict.fromkeys(admin.describe_acls(acl_filter).result(ctx.timeout_s)))
    except KafkaException as exc:
        raise ctx.error(exc, "list ACLs", admin) from None
    if args.format == "json":
        print(json.dumps([_as_dict(b) for b in found], indent=2))
    else:
        for line in _describe_lines(found):
            print(line)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    if not _resources(args) and not (args.allow_principal or args.deny_principal):
        raise UsageError("name a resource or a principal: remove does not delete every ACL")
    admin = AdminClient(ctx.config())
    removed: dict[Any, None] = {}
    try:
        futures = admin.delete_acls(_filters(args, entries=True), request_timeout=ctx.timeout_s)
        for future in futures.values():
            removed.update(dict.fromkeys(future.result()))
    except KafkaException as exc:
        raise ctx.error(exc, "remove ACLs", admin) from None
    print(f"Removed {len(removed)} ACL{'s' if len(removed) != 1 else ''}.")
    for line in _describe_lines(removed):
        print(line)
    return 0


def _name(value: Any) -> str:
    return str(value.name)


def _as_dict(binding: Any) -> dict[str, str]:
    return {
        "resource_type": "CLUSTER"
        if binding.restype == ResourceType.BROKER
        else _name(binding.restype),
        "resource_name": binding.name,
        "pattern_type": _name(binding.resource_pattern_type),
        "principal": binding.principal,
        "host": binding.host,
        "operation": _name(binding.operation),
        "permission_type": _name(binding.permission_type),
    }


def _describe_lines(bindings: Iterable[Any]) -> Sequence[str]:
    """kafka-acls.sh's layout: the resource pattern, then one line per entry."""
    by_resource: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for binding in bindings:
        row = _as_dict(binding)
        key = (row["resource_type"], row["resource_name"], row["pattern_type"])
        by_resource.setdefault(key, []).append(row)
    lines = []
    for (kind, name, pattern), rows in sorted(by_resource.items()):
        lines.append(
            f"Current ACLs for resource `ResourcePattern(resourceType={kind}, name={name}, "
            f"patternType={pattern})`: "
        )
        lines += [
            f" \t(principal={r['principal']}, host={r['host']}, operation={r['operation']}, "
            f"permissionType={r['permission_type']})"
            for r in rows
        ]
        lines.append("")
    return lines
