"""The Kafka APIs shoal can serve: key, version range, first flexible version.

Versions are those of Apache Kafka 4.2 (the message specs under
``clients/src/main/resources/common/message/``), after the KIP-896 removals. Every version in a
served range has a message class in the pinned kio release; a test checks that, and checks the
flexible versions against kio's generated classes.

Flexible versions (KIP-482) change the headers as well as the body: a flexible request uses
request header v2 (tagged fields after the client id, which stays a non-compact string), a
flexible response uses response header v1 (tagged fields after the correlation id). The one
exception is ApiVersions, whose *response* header is always v0, because a client reads it before
it knows which versions the broker speaks.

The broker advertises only the APIs it has handlers for: build its table with
:func:`restrict_to` and advertise :func:`advertised_versions` of that table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final, NamedTuple


class ApiKey(IntEnum):
    """The API keys in shoal's table, named as in Kafka's ``ApiKeys`` enum."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    DESCRIBE_QUORUM = 55
    UPDATE_FEATURES = 57
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69
    LIST_CONFIG_RESOURCES = 74
    DESCRIBE_TOPIC_PARTITIONS = 75
    SHARE_GROUP_HEARTBEAT = 76
    SHARE_GROUP_DESCRIBE = 77
    SHARE_FETCH = 78
    SHARE_ACKNOWLEDGE = 79
    DESCRIBE_SHARE_GROUP_OFFSETS = 90
    ALTER_SHARE_GROUP_OFFSETS = 91
    DELETE_SHARE_GROUP_OFFSETS = 92


@dataclass(frozen=True, slots=True)
class ApiVersionRange:
    """What shoal does with one API key.

    ``min_version``..``max_version`` are the versions decoded and served. ``advertised_min`` is
    the lowest version ApiVersions announces; it is below ``min_version`` only for Produce (see
    :data:`SUPPORTED_APIS`), and requests in that gap are refused. ``flexible_from`` is the first
    flexible version in Kafka's spec, or ``None`` for an API that has none.
    """

    api_key: ApiKey
    min_version: int
    max_version: int
    flexible_from: int | None
    advertised_min: int

    @property
    def name(self) -> str:
        return self.api_key.name

    def serves(self, version: int) -> bool:
        """True when requests of ``version`` are decoded and handed to the broker."""
        return self.min_version <= version <= self.max_version

    def advertises(self, version: int) -> bool:
        return self.advertised_min <= version <= self.max_version

    def is_flexible(self, version: int) -> bool:
        """Whether ``version`` uses the flexible encoding (compact types, tagged fields)."""
        return self.flexible_from is not None and version >= self.flexible_from


class AdvertisedVersions(NamedTuple):
    """One entry of an ApiVersions response."""

    api_key: int
    min_version: int
    max_version: int


def _api(
    key: ApiKey,
    min_version: int,
    max_version: int,
    flexible_from: int | None,
    *,
    advertised_min: int | None = None,
) -> tuple[int, ApiVersionRange]:
    advertised = min_version if advertised_min is None else advertised_min
    return key, ApiVersionRange(key, min_version, max_version, flexible_from, advertised)


# The versions shoal serves. Where a range is narrower than Kafka 4.2's the line says why.
SUPPORTED_APIS: Final[Mapping[int, ApiVersionRange]] = MappingProxyType(
    dict(
        [
            # Produce v0-2 are advertised but refused, as Kafka 4 does (KAFKA-18659): librdkafka
            # derives its compression support from the advertised Produce range and, without v0,
            # silently sends batches uncompressed. Clients pick the highest common version, so a
            # client that can send v3 never sends v0-2; one that cannot gets its connection closed.
            _api(ApiKey.PRODUCE, 3, 13, 9, advertised_min=0),
            _api(ApiKey.FETCH, 4, 18, 12),
            _api(ApiKey.LIST_OFFSETS, 1, 11, 6),
            _api(ApiKey.METADATA, 0, 13, 9),
            _api(ApiKey.OFFSET_COMMIT, 2, 10, 8),
            _api(ApiKey.OFFSET_FETCH, 1, 10, 6),
            _api(ApiKey.FIND_COORDINATOR, 0, 6, 3),
            _api(ApiKey.JOIN_GROUP, 0, 9, 6),
            _api(ApiKey.HEARTBEAT, 0, 4, 4),
            _api(ApiKey.LEAVE_GROUP, 0, 5, 4),
            _api(ApiKey.SYNC_GROUP, 0, 5, 4),
            _api(ApiKey.DESCRIBE_GROUPS, 0, 6, 5),
            _api(ApiKey.LIST_GROUPS, 0, 5, 3),
            _api(ApiKey.SASL_HANDSHAKE, 0, 1, None),
            _api(ApiKey.API_VERSIONS, 0, 4, 3),
            _api(ApiKey.CREATE_TOPICS, 2, 7, 5),
            _api(ApiKey.DELETE_TOPICS, 1, 6, 4),
            _api(ApiKey.DELETE_RECORDS, 0, 2, 2),
            # v6 adds two-phase commit (KIP-939), which shoal's transactions do not implement.
            _api(ApiKey.INIT_PRODUCER_ID, 0, 5, 2),
            _api(ApiKey.OFFSET_FOR_LEADER_EPOCH, 2, 4, 4),
            # v4+ batches transactions (with verify_only) for broker-to-coordinator calls;
            # clients use v0-3.
            _api(ApiKey.ADD_PARTITIONS_TO_TXN, 0, 5, 3),
            _api(ApiKey.ADD_OFFSETS_TO_TXN, 0, 4, 3),
            # v5 is transactions V2 (KIP-890 part 2: an epoch bump per transaction, answered).
            _api(ApiKey.END_TXN, 0, 5, 3),
            _api(ApiKey.TXN_OFFSET_COMMIT, 0, 5, 3),
            # Operators' kafka-transactions.sh abort (issue 14, txn7b); v0 removed by Kafka 4.0.
            _api(ApiKey.WRITE_TXN_MARKERS, 1, 2, 1),
            _api(ApiKey.DESCRIBE_ACLS, 1, 3, 2),
            _api(ApiKey.CREATE_ACLS, 1, 3, 2),
            _api(ApiKey.DELETE_ACLS, 1, 3, 2),
            _api(ApiKey.DESCRIBE_CONFIGS, 1, 4, 4),
            _api(ApiKey.ALTER_CONFIGS, 0, 2, 2),
            # v0 of both log-dir APIs was removed by Kafka 4.0 (KIP-896).
            _api(ApiKey.ALTER_REPLICA_LOG_DIRS, 1, 2, 2),
            _api(ApiKey.DESCRIBE_LOG_DIRS, 1, 5, 2),
            _api(ApiKey.SASL_AUTHENTICATE, 0, 2, 2),
            _api(ApiKey.CREATE_PARTITIONS, 0, 3, 2),
            _api(ApiKey.DELETE_GROUPS, 0, 2, 2),
            _api(ApiKey.ELECT_LEADERS, 0, 2, 2),
            _api(ApiKey.INCREMENTAL_ALTER_CONFIGS, 0, 1, 1),
            _api(ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0, 1, 0),
            _api(ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, 0, 0),
            _api(ApiKey.OFFSET_DELETE, 0, 0, None),
            _api(ApiKey.DESCRIBE_CLIENT_QUOTAS, 0, 1, 1),
            _api(ApiKey.ALTER_CLIENT_QUOTAS, 0, 1, 1),
            _api(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, 0, 0),
            _api(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, 0, 0),
            _api(ApiKey.DESCRIBE_QUORUM, 0, 2, 0),
            _api(ApiKey.UPDATE_FEATURES, 0, 2, 0),
            _api(ApiKey.DESCRIBE_CLUSTER, 0, 2, 0),
            _api(ApiKey.DESCRIBE_PRODUCERS, 0, 0, 0),
            _api(ApiKey.DESCRIBE_TRANSACTIONS, 0, 0, 0),
            _api(ApiKey.LIST_TRANSACTIONS, 0, 2, 0),
            _api(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, 1, 0),
            _api(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, 1, 0),
            # Kafka 4.1 renamed ListClientMetricsResources to this; v1 lists any resource type.
            _api(ApiKey.LIST_CONFIG_RESOURCES, 0, 1, 0),
            _api(ApiKey.DESCRIBE_TOPIC_PARTITIONS, 0, 0, 0),
            # KIP-932 share groups: v0 was an early-access format removed by Kafka 4.1.
            _api(ApiKey.SHARE_GROUP_HEARTBEAT, 1, 1, 0),
            _api(ApiKey.SHARE_GROUP_DESCRIBE, 1, 1, 0),
            _api(ApiKey.SHARE_FETCH, 1, 2, 0),
            _api(ApiKey.SHARE_ACKNOWLEDGE, 1, 2, 0),
            # KIP-932's admin APIs for share-group start offsets (issue 16).
            _api(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, 0, 1, 0),
            _api(ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, 0, 0),
            _api(ApiKey.DELETE_SHARE_GROUP_OFFSETS, 0, 0, 0),
        ]
    )
)

API_VERSIONS_FALLBACK_VERSION: Final = 0
"""KIP-511: an ApiVersions request of a version the broker does not know is answered in this
version (with UNSUPPORTED_VERSION), because every client can read v0."""

REQUEST_HEADER_V1: Final = 1
REQUEST_HEADER_V2: Final = 2
RESPONSE_HEADER_V0: Final = 0
RESPONSE_HEADER_V1: Final = 1


def api_range(
    api_key: int, apis: Mapping[int, ApiVersionRange] = SUPPORTED_APIS
) -> ApiVersionRange:
    """The entry for ``api_key``; :class:`KeyError` when the table does not have it."""
    try:
        return apis[api_key]
    except KeyError:
        raise KeyError(f"api key {api_key} is not in shoal's API table") from None


def is_flexible(api_key: int, version: int) -> bool:
    """Whether ``version`` of ``api_key`` uses flexible encoding. KeyError for an unknown key.

    Answers for any version number; callers check that the version is served first.
    """
    return api_range(api_key).is_flexible(version)


def request_header_version(api_key: int, version: int) -> int:
    """2 for flexible requests, else 1 (header v0, without client id, is for no served API)."""
    return REQUEST_HEADER_V2 if is_flexible(api_key, version) else REQUEST_HEADER_V1


def response_header_version(api_key: int, version: int) -> int:
    """1 for flexible responses, else 0; the ApiVersions response header is always v0."""
    if api_key == ApiKey.API_VERSIONS:
        return RESPONSE_HEADER_V0
    return RESPONSE_HEADER_V1 if is_flexible(api_key, version) else RESPONSE_HEADER_V0


def restrict_to(implemented: Iterable[int]) -> Mapping[int, ApiVersionRange]:
    """The part of :data:`SUPPORTED_APIS` for the API keys the broker has handlers for.

    Raises :class:`ValueError` for a key shoal's table does not have: a handler for an API the
    codec cannot decode is a wiring mistake, better caught at start-up than by a client.
    """
    keys = set(implemented)
    unknown = sorted(keys - SUPPORTED_APIS.keys())
    if unknown:
        raise ValueError(f"api keys not in shoal's API table: {unknown}")
    return MappingProxyType({key: SUPPORTED_APIS[key] for key in sorted(keys)})


def advertised_versions(
    apis: Mapping[int, ApiVersionRange] = SUPPORTED_APIS,
) -> tuple[AdvertisedVersions, ...]:
    """The (api_key, min, max) entries of an ApiVersions response, by ascending key."""
    return tuple(
        AdvertisedVersions(int(entry.api_key), entry.advertised_min, entry.max_version)
        for _key, entry in sorted(apis.items())
    )
