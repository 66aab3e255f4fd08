"""Kafka's client quota entities and their config keys, and the checks AlterClientQuotas and
DescribeClientQuotas make on them (Kafka's ``ClientQuotaControlManager`` and
``ClientQuotasImage.describe``), with Kafka's messages.

An entity names up to one value per entity type: ``user``, ``client-id`` (alone or together)
or ``ip`` (alone); a name of ``None`` is that type's default (``<default>`` in
``kafka-configs.sh``). Quota values are doubles on the wire, as in Kafka.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from shoal.protocol import ErrorCode

USER: Final = "user"
CLIENT_ID: Final = "client-id"
IP: Final = "ip"
ENTITY_TYPES: Final = (USER, CLIENT_ID, IP)

PRODUCER_BYTE_RATE: Final = "producer_byte_rate"
CONSUMER_BYTE_RATE: Final = "consumer_byte_rate"
REQUEST_PERCENTAGE: Final = "request_percentage"
CONTROLLER_MUTATION_RATE: Final = "controller_mutation_rate"
CONNECTION_CREATION_RATE: Final = "connection_creation_rate"


class _Kind(Enum):
    """The Java type of a quota config: integral ones refuse fractions and their overflow."""

    LONG = ("a LONG", 2**63 - 1)
    INT = ("an INT", 2**31 - 1)
    DOUBLE = ("a DOUBLE", math.inf)


USER_CLIENT_KEYS: Final[Mapping[str, _Kind]] = {
    PRODUCER_BYTE_RATE: _Kind.LONG,
    CONSUMER_BYTE_RATE: _Kind.LONG,
    REQUEST_PERCENTAGE: _Kind.DOUBLE,
    CONTROLLER_MUTATION_RATE: _Kind.DOUBLE,
}
IP_KEYS: Final[Mapping[str, _Kind]] = {CONNECTION_CREATION_RATE: _Kind.INT}

FRACTION_TOLERANCE: Final = 1e-6
"""Kafka's tolerance before an integral quota's value counts as fractional."""


class QuotaRequestError(ValueError):
    """A quota request Kafka refuses: ``code`` (INVALID_REQUEST mostly) and Kafka's message."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class QuotaEntity:
    """Entity type → name (``None``: the type's default), kept sorted so equal entities hash
    alike whatever order a request listed them in."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def of(cls, parts: Mapping[str, str | None]) -> QuotaEntity:
        return cls(tuple(sorted(parts.items())))

    @property
    def types(self) -> frozenset[str]:
        return frozenset(kind for kind, _ in self.parts)

    def get(self, kind: str) -> str | None:
        return dict(self.parts).get(kind)

    def __str__(self) -> str:
        # As Kafka prints a ClientQuotaEntity in its messages.
        entries = ", ".join(
            f"{kind}={'null' if name is None else name}" for kind, name in self.parts
        )
        return f"ClientQuotaEntity(entries={{{entries}}})"


def checked_entity(parts: Sequence[tuple[str, str | None]]) -> QuotaEntity:
    """The entity of an AlterClientQuotas entry; :class:`QuotaRequestError` if Kafka refuses it."""
    if not parts:
        raise QuotaRequestError("Invalid empty client quota entity")
    # A type named twice is not refused: Kafka reads the entity into a map, so the last name
    # given wins (its controller's "duplicate entity entry" check never sees the duplicate).
    seen: dict[str, str | None] = {}
    for kind, name in parts:
        if kind not in ENTITY_TYPES:
            raise QuotaRequestError(f"Unhandled client quota entity type: {kind}")
        if name is not None and not name:
            raise QuotaRequestError(f"Empty {kind} not supported")
        seen[kind] = name
    return QuotaEntity.of(seen)


def keys_for(entity: QuotaEntity) -> Mapping[str, _Kind]:
    """The config keys ``entity`` may carry; :class:`QuotaRequestError` for a combination Kafka
    refuses or an ``ip`` name that is not an address."""
    types = entity.types
    if IP in types:
        if types != {IP}:
            # Kafka's message, missing space included, so that tools matching it still do.
            raise QuotaRequestError(
                "Invalid quota entity combination, IP entity shouldnot be combined with User "
                "or ClientId"
            )
        ip = entity.get(IP)
        if ip is not None and not is_ip_address(ip):
            # Kafka also accepts a host name it can resolve; shoal resolves nothing here and
            # takes addresses only.
            raise QuotaRequestError(f"{ip} is not a valid IP or resolvable host.")
        return IP_KEYS
    if types:
        return USER_CLIENT_KEYS
    raise QuotaRequestError("Invalid empty client quota entity")


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_value(keys: Mapping[str, _Kind], key: str, value: float) -> None:
    """Kafka's checks of one quota value being set."""
    kind = keys.get(key)
    if kind is None:
        raise QuotaRequestError(f"Invalid configuration key {key}")
    if not value > 0.0:  # also NaN
        raise QuotaRequestError(f"Quota {key} must be greater than 0")
    article_type, maximum = kind.value
    if kind is _Kind.DOUBLE:
        return
    if value > maximum:
        raise QuotaRequestError(f"Proposed value for {key} is too large for {article_type}.")
    if abs(math.fmod(value, 1.0)) > FRACTION_TOLERANCE:
        raise QuotaRequestError(f"{key} cannot be a fractional value.")


def checked_ops(
    entity: QuotaEntity, ops: Iterable[tuple[str, float | None]]
) -> dict[str, float | None]:
    """The changes to ``entity``'s quotas (``None`` removes a key), checked as Kafka does."""
    changes: dict[str, float | None] = {}
    for key, value in ops:
        if key in changes:
            # Kafka's controller first says "Duplicate quota key ...", then overwrites that with
            # this message because the entity now has a result; clients see this one.
            raise QuotaRequestError(f"Ignoring duplicate entity {entity}")
        changes[key] = value
    keys = keys_for(entity)
    for key, value in changes.items():
        if value is not None:  # removing a key that was never set (or is unknown) is allowed
            check_value(keys, key, value)
    return changes


# -- DescribeClientQuotas filters ----------------------------------------------------------

MATCH_EXACT: Final = 0
MATCH_DEFAULT: Final = 1
MATCH_SPECIFIED: Final = 2


@dataclass(frozen=True, slots=True)
class QuotaFilter:
    exact: Mapping[str, str | None]
    """Entity types whose name must be this (``None``: the default entity)."""
    specified: frozenset[str]
    """Entity types that must be present, with any name."""
    strict: bool
    """Entities with other types than those in the filter do not match."""

    def matches(self, entity: QuotaEntity) -> bool:
        parts = dict(entity.parts)
        if self.strict and len(parts) != len(self.exact) + len(self.specified):
            return False
        for kind, name in self.exact.items():
            if kind not in parts or parts[kind] != name:
                return False
        return all(kind in parts for kind in self.specified)


def checked_filter(
    components: Sequence[tuple[str, int, str | None]], *, strict: bool
) -> QuotaFilter:
    """The filter of a DescribeClientQuotas request: (entity type, match type, match) each."""
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for kind, match_type, match in components:
        if not kind:
            raise QuotaRequestError("Invalid empty entity type.")
        if kind in exact or kind in specified:
            raise QuotaRequestError(
                f"Entity type {kind} cannot appear more than once in the filter."
            )
        if kind not in ENTITY_TYPES:
            raise QuotaRequestError(
                f"Unsupported entity type {kind}", ErrorCode.UNSUPPORTED_VERSION
            )
        if match_type == MATCH_EXACT:
            if match is None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null."
                )
            exact[kind] = match
        elif match_type == MATCH_DEFAULT:
            if match is not None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                )
            exact[kind] = None
        elif match_type == MATCH_SPECIFIED:
            if match is not None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                )
            specified.add(kind)
        else:
            raise QuotaRequestError(f"Unknown match type {match_type}")
    named = set(exact) | specified
    if IP in named and named & {USER, CLIENT_ID}:
        raise QuotaRequestError(
            "Invalid entity filter component combination. IP filter component should not be "
            "used with user or clientId filter component."
        )
    return QuotaFilter(exact, frozenset(specified), strict)
