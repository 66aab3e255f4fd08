"""Quota configs: Kafka's checks on AlterClientQuotas and DescribeClientQuotas filters, and the
durable file (atomic, reloaded at start, refused loudly when damaged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.protocol import ErrorCode
from shoal.security.quota_entity import (
    MATCH_DEFAULT,
    MATCH_EXACT,
    MATCH_SPECIFIED,
    QuotaEntity,
    QuotaRequestError,
    checked_filter,
)
from shoal.security.quota_store import (
    QUOTAS_FILE,
    Alteration,
    QuotaConfigsDamaged,
    QuotaStore,
)
from shoal.storage.fs import OsFileSystem


def store(tmp_path: Path) -> QuotaStore:
    return QuotaStore(OsFileSystem(), str(tmp_path))


def alter(s: QuotaStore, entity: list[tuple[str, str | None]], **ops: float | None) -> str | None:
    [result] = s.alter([Alteration(entity, list(ops.items()))])
    return None if result.error is None else str(result.error)


def everything(s: QuotaStore) -> dict[QuotaEntity, dict[str, float]]:
    return {e: dict(q) for e, q in s.describe(checked_filter([], strict=False))}


def test_set_change_remove_and_reload(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert alter(s, [("user", "alice")], producer_byte_rate=1048576, consumer_byte_rate=2e6) is None
    assert alter(s, [("client-id", None)], request_percentage=50.5) is None
    assert alter(s, [("ip", "10.0.0.1")], connection_creation_rate=10) is None
    assert alter(s, [("user", "alice")], consumer_byte_rate=None) is None
    expected = {
        QuotaEntity.of({"user": "alice"}): {"producer_byte_rate": 1048576.0},
        QuotaEntity.of({"client-id": None}): {"request_percentage": 50.5},
        QuotaEntity.of({"ip": "10.0.0.1"}): {"connection_creation_rate": 10.0},
    }
    assert everything(s) == expected
    assert everything(store(tmp_path)) == expected  # what a restart loads
    # Removing the last key removes the entity.
    assert alter(s, [("ip", "10.0.0.1")], connection_creation_rate=None) is None
    assert QuotaEntity.of({"ip": "10.0.0.1"}) not in everything(store(tmp_path))


@pytest.mark.parametrize(
    ("entity", "ops", "message"),
    [
        ([], {"producer_byte_rate": 1.0}, "Invalid empty client quota entity"),
        (
            [("group", "g")],
            {"producer_byte_rate": 1.0},
            "Unhandled client quota entity type: group",
        ),
        ([("user", "")], {"producer_byte_rate": 1.0}, "Empty user not supported"),
        (
            [("user", "a"), ("ip", "1.2.3.4")],
            {"producer_byte_rate": 1.0},
            "Invalid quota entity combination",
        ),
        (
            [("ip", "not an address")],
            {"connection_creation_rate": 1.0},
            "not an address is not a valid IP or resolvable host.",
        ),
        (
            [("user", "a")],
            {"connection_creation_rate": 1.0},
            "Invalid configuration key connection_creation_rate",
        ),
        (
            [("ip", None)],
            {"producer_byte_rate": 1.0},
            "Invalid configuration key producer_byte_rate",
        ),
        ([("user", "a")], {"nonsense": 1.0}, "Invalid configuration key nonsense"),
        (
            [("user", "a")],
            {"producer_byte_rate": 0.0},
            "Quota producer_byte_rate must be greater than 0",
        ),
        (
            [("user", "a")],
            {"producer_byte_rate": -5.0},
            "Quota producer_byte_rate must be greater than 0",
        ),
        (
            [("user", "a")],
            {"producer_byte_rate": 1.5},
            "producer_byte_rate cannot be a fractional value.",
        ),
        (
            [("ip", None)],
            {"connection_creation_rate": 2.0**31},
            "Proposed value for connection_creation_rate is too large for an INT.",
        ),
    ],
)
def test_kafkas_refusals_change_nothing(
    tmp_path: Path,
    entity: list[tuple[str, str | None]],
    ops: dict[str, float],
    message: str,
) -> None:
    s = store(tmp_path)
    assert alter(s, [("user", "keep")], producer_byte_rate=7) is None
    before = everything(s)
    [result] = s.alter([Alteration(entity, list(ops.items()))])
    assert result.error is not None
    assert result.error.code == ErrorCode.INVALID_REQUEST
    assert message in str(result.error)
    assert everything(s) == before
    assert everything(store(tmp_path)) == before


def test_a_refused_entity_does_not_stop_the_others(tmp_path: Path) -> None:
    s = store(tmp_path)
    results = s.alter(
        [
            Alteration([("user", "a")], [("producer_byte_rate", 5.0)]),
            Alteration([("user", "b")], [("bogus", 5.0)]),
        ]
    )
    assert [r.error is None for r in results] == [True, False]
    assert list(everything(s)) == [QuotaEntity.of({"user": "a"})]


def test_duplicates_as_kafka_answers_them(tmp_path: Path) -> None:
    s = store(tmp_path)
    # A key twice: the entity is refused (Kafka's message for it is this one).
    [result] = s.alter(
        [Alteration([("user", "a")], [("producer_byte_rate", 5.0), ("producer_byte_rate", 6.0)])]
    )
    assert result.error is not None
    assert str(result.error) == "Ignoring duplicate entity ClientQuotaEntity(entries={user=a})"
    assert everything(s) == {}
    # An entity twice: one answer, an error, and (as in Kafka) the first occurrence applied.
    results = s.alter(
        [
            Alteration([("user", "a")], [("producer_byte_rate", 5.0)]),
            Alteration([("user", "a")], [("consumer_byte_rate", 5.0)]),
        ]
    )
    assert len(results) == 1
    assert results[0].error is not None
    assert "Ignoring duplicate entity" in str(results[0].error)
    assert everything(s) == {QuotaEntity.of({"user": "a"}): {"producer_byte_rate": 5.0}}
    # A type twice in one entity: the last name wins, as Kafka reads the entity into a map.
    assert alter(s, [("user", "x"), ("user", "y")], producer_byte_rate=7) is None
    assert QuotaEntity.of({"user": "y"}) in everything(s)


def test_validate_only_changes_nothing(tmp_path: Path) -> None:
    s = store(tmp_path)
    [result] = s.alter(
        [Alteration([("user", "a")], [("producer_byte_rate", 5.0)])], validate_only=True
    )
    assert result.error is None
    assert everything(s) == {}
    assert not (tmp_path / QUOTAS_FILE).exists()


def test_removing_a_key_never_set_is_accepted(tmp_path: Path) -> None:
    assert alter(store(tmp_path), [("user", "a")], unknown_key=None) is None


def test_a_damaged_file_stops_the_broker_with_a_message(tmp_path: Path) -> None:
    (tmp_path / QUOTAS_FILE).write_text('{"version": 1, "entities": [{"entity": {}}]}')
    with pytest.raises(QuotaConfigsDamaged, match="remove it to run with no client quotas"):
        store(tmp_path)


def _describe(
    s: QuotaStore, *components: tuple[str, int, str | None], strict: bool = False
) -> set[str]:
    return {str(e) for e, _ in s.describe(checked_filter(list(components), strict=strict))}


def test_describe_filters_match_as_kafkas(tmp_path: Path) -> None:
    s = store(tmp_path)
    for parts in (
        [("user", "alice")],
        [("user", None)],
        [("user", "alice"), ("client-id", "app")],
        [("client-id", "app")],
        [("ip", None)],
    ):
        assert (
            alter(
                s,
                parts,
                **(
                    {"connection_creation_rate": 1}
                    if parts[0][0] == "ip"
                    else {"producer_byte_rate": 1}
                ),
            )
            is None
        )
    assert _describe(s, ("user", MATCH_EXACT, "alice")) == {
        "ClientQuotaEntity(entries={user=alice})",
        "ClientQuotaEntity(entries={client-id=app, user=alice})",
    }
    assert _describe(s, ("user", MATCH_EXACT, "alice"), strict=True) == {
        "ClientQuotaEntity(entries={user=alice})"
    }
    assert _describe(s, ("user", MATCH_DEFAULT, None)) == {"ClientQuotaEntity(entries={user=null})"}
    assert len(_describe(s, ("user", MATCH_SPECIFIED, None))) == 3
    assert len(_describe(s, ("client-id", MATCH_SPECIFIED, None))) == 2
    assert _describe(s, ("ip", MATCH_SPECIFIED, None)) == {"ClientQuotaEntity(entries={ip=null})"}
    assert len(_describe(s)) == 5


@pytest.mark.parametrize(
    ("components", "code", "message"),
    [
        ([("", 0, "x")], ErrorCode.INVALID_REQUEST, "Invalid empty entity type."),
        (
            [("user", 0, "a"), ("user", 2, None)],
            ErrorCode.INVALID_REQUEST,
            "Entity type user cannot appear more than once in the filter.",
        ),
        ([("group", 0, "a")], ErrorCode.UNSUPPORTED_VERSION, "Unsupported entity type group"),
        (
            [("user", 0, None)],
            ErrorCode.INVALID_REQUEST,
            "Request specified MATCH_TYPE_EXACT, but set match string to null.",
        ),
        (
            [("user", 1, "a")],
            ErrorCode.INVALID_REQUEST,
            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
        ),
        (
            [("user", 2, "a")],
            ErrorCode.INVALID_REQUEST,
            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
        ),
        ([("user", 7, None)], ErrorCode.INVALID_REQUEST, "Unknown match type 7"),
        (
            [("ip", 2, None), ("user", 2, None)],
            ErrorCode.INVALID_REQUEST,
            "IP filter component should not be used with user or clientId filter component.",
        ),
    ],
)
def test_bad_filters_get_kafkas_errors(
    components: list[tuple[str, int, str | None]], code: ErrorCode, message: str
) -> None:
    with pytest.raises(QuotaRequestError) as caught:
        checked_filter(components, strict=False)
    assert caught.value.code == code
    assert message in str(caught.value)
