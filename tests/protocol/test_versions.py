"""The API version table: its contents, kio's coverage of it, header versions, restriction."""

from __future__ import annotations

import pytest

from shoal.protocol import (
    SUPPORTED_APIS,
    ApiKey,
    advertised_versions,
    is_flexible,
    request_header_version,
    response_header_version,
    restrict_to,
)
from tests.protocol.kio_values import all_served_versions, case_id, message_class

# The table of the KAFKA_NOTES "API keys to serve" section: key -> (min, max, first flexible).
NOTES_TABLE = {
    ApiKey.API_VERSIONS: (0, 4, 3),
    ApiKey.METADATA: (0, 13, 9),
    ApiKey.PRODUCE: (3, 13, 9),
    ApiKey.FETCH: (4, 18, 12),
    ApiKey.LIST_OFFSETS: (1, 11, 6),
    ApiKey.FIND_COORDINATOR: (0, 6, 3),
    ApiKey.JOIN_GROUP: (0, 9, 6),
    ApiKey.SYNC_GROUP: (0, 5, 4),
    ApiKey.HEARTBEAT: (0, 4, 4),
    ApiKey.LEAVE_GROUP: (0, 5, 4),
    ApiKey.OFFSET_COMMIT: (2, 10, 8),
    ApiKey.OFFSET_FETCH: (1, 10, 6),
    ApiKey.INIT_PRODUCER_ID: (0, 5, 2),
    ApiKey.SASL_HANDSHAKE: (0, 1, None),
    ApiKey.SASL_AUTHENTICATE: (0, 2, 2),
    ApiKey.CREATE_TOPICS: (2, 7, 5),
    ApiKey.DELETE_TOPICS: (1, 6, 4),
    ApiKey.CREATE_PARTITIONS: (0, 3, 2),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: (2, 4, 4),
    ApiKey.ADD_PARTITIONS_TO_TXN: (0, 5, 3),
    ApiKey.ADD_OFFSETS_TO_TXN: (0, 4, 3),
    ApiKey.END_TXN: (0, 5, 3),
    ApiKey.TXN_OFFSET_COMMIT: (0, 5, 3),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: (0, 1, 0),
    ApiKey.CONSUMER_GROUP_DESCRIBE: (0, 1, 0),
}

# Java 4.x clients refuse a broker that advertises less than these minimums (KIP-896).
JAVA_4_MINIMUMS = {
    ApiKey.PRODUCE: 3,
    ApiKey.FETCH: 4,
    ApiKey.LIST_OFFSETS: 1,
    ApiKey.OFFSET_COMMIT: 2,
    ApiKey.OFFSET_FETCH: 1,
    ApiKey.CREATE_TOPICS: 2,
    ApiKey.DELETE_TOPICS: 1,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: 2,
    ApiKey.DESCRIBE_CONFIGS: 1,
    ApiKey.DESCRIBE_ACLS: 1,
    ApiKey.CREATE_ACLS: 1,
    ApiKey.DELETE_ACLS: 1,
}


@pytest.mark.parametrize("key", list(NOTES_TABLE), ids=lambda key: key.name)
def test_ranges_match_the_notes(key: ApiKey) -> None:
    entry = SUPPORTED_APIS[key]
    assert (entry.min_version, entry.max_version, entry.flexible_from) == NOTES_TABLE[key]


def test_served_minimums_meet_java_4() -> None:
    for key, minimum in JAVA_4_MINIMUMS.items():
        assert SUPPORTED_APIS[key].min_version == minimum, key.name


def test_produce_is_advertised_from_zero_but_served_from_three() -> None:
    produce = SUPPORTED_APIS[ApiKey.PRODUCE]
    assert produce.advertised_min == 0
    assert [v for v in range(14) if produce.advertises(v) and not produce.serves(v)] == [0, 1, 2]
    others = [e.name for e in SUPPORTED_APIS.values() if e.advertised_min != e.min_version]
    assert others == ["PRODUCE"]


def test_sasl_handshake_and_join_group_are_advertised_from_zero() -> None:
    assert SUPPORTED_APIS[ApiKey.SASL_HANDSHAKE].advertised_min == 0
    assert SUPPORTED_APIS[ApiKey.SASL_HANDSHAKE].max_version == 1
    assert SUPPORTED_APIS[ApiKey.JOIN_GROUP].advertised_min == 0


@pytest.mark.parametrize(
    ("key", "version"),
    all_served_versions(),
    ids=[case_id(key, version) for key, version in all_served_versions()],
)
def test_kio_has_every_served_version_with_the_same_flexibility(key: int, version: int) -> None:
    for kind in ("request", "response"):
        cls = message_class(key, version, kind)
        assert (cls.__api_key__, cls.__version__) == (key, version)
        assert cls.__flexible__ == is_flexible(key, version)
    request_header = message_class(key, version, "request").__header_schema__
    response_header = message_class(key, version, "response").__header_schema__
    assert request_header.__version__ == request_header_version(key, version)
    assert response_header.__version__ == response_header_version(key, version)


def test_api_versions_response_header_is_always_v0() -> None:
    assert [response_header_version(ApiKey.API_VERSIONS, v) for v in range(5)] == [0] * 5
    assert [request_header_version(ApiKey.API_VERSIONS, v) for v in range(5)] == [1, 1, 1, 2, 2]
    assert response_header_version(ApiKey.METADATA, 9) == 1
    assert response_header_version(ApiKey.METADATA, 8) == 0


def test_flexibility_of_unknown_key_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="api key 4 is not in"):
        is_flexible(4, 0)


def test_advertised_versions_are_sorted_and_complete() -> None:
    advertised = advertised_versions()
    assert [entry.api_key for entry in advertised] == sorted(SUPPORTED_APIS)
    assert advertised[0] == (0, 0, 13)
    assert (18, 0, 4) in advertised


def test_restrict_to_advertises_only_implemented_apis() -> None:
    table = restrict_to([ApiKey.METADATA, ApiKey.API_VERSIONS, ApiKey.PRODUCE])
    assert list(table) == [0, 3, 18]
    assert advertised_versions(table) == ((0, 0, 13), (3, 0, 13), (18, 0, 4))


def test_restrict_to_refuses_keys_outside_the_table() -> None:
    with pytest.raises(ValueError, match=r"\[4, 1000\]"):
        restrict_to([ApiKey.METADATA, 4, 1000])
