"""Kafka's eight levels of (user, client-id) quotas, who shares a rate, and bounded state."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from shoal.security.quota_entity import CLIENT_ID, USER, QuotaEntity
from shoal.security.quota_manager import ClientQuotaManager, limit_for, tags_for
from shoal.security.quota_rate import RateConfig

RATE = RateConfig(samples=11, window_ms=1000)
D = None  # the default entity of a type


def entity(user: str | bool | None = False, client: str | bool | None = False) -> QuotaEntity:
    parts: dict[str, str | None] = {}
    if user is not False:
        parts[USER] = user if isinstance(user, str) else None
    if client is not False:
        parts[CLIENT_ID] = client if isinstance(client, str) else None
    return QuotaEntity.of(parts)


# Kafka's order, highest precedence first ("Quotas" in Kafka's design docs).
LEVELS = [
    ("/users/alice/clients/app", entity("alice", "app")),
    ("/users/alice/clients/<default>", entity("alice", D)),
    ("/users/alice", entity("alice")),
    ("/users/<default>/clients/app", entity(D, "app")),
    ("/users/<default>/clients/<default>", entity(D, D)),
    ("/users/<default>", entity(D)),
    ("/clients/app", entity(client="app")),
    ("/clients/<default>", entity(client=D)),
]


def quota_of(quotas: Mapping[QuotaEntity, float], user: str, client: str) -> float | None:
    return limit_for(quotas, tags_for(quotas, user, client))


@pytest.mark.parametrize("level", range(len(LEVELS)), ids=[name for name, _ in LEVELS])
def test_the_highest_level_set_wins_over_every_lower_one(level: int) -> None:
    # The level under test and every level below it are set, each to a distinct value.
    quotas = {e: float(1000 + i) for i, (_, e) in enumerate(LEVELS) if i >= level}
    assert quota_of(quotas, "alice", "app") == 1000 + level


@pytest.mark.parametrize("level", range(len(LEVELS)), ids=[name for name, _ in LEVELS])
def test_a_level_alone_applies_and_names_only_its_own_clients(level: int) -> None:
    name, set_entity = LEVELS[level]
    quotas = {set_entity: 5.0}
    assert quota_of(quotas, "alice", "app") == 5.0
    # Another user with another client id is caught only by the levels that are defaults
    # in both parts.
    expect_other = 5.0 if ("alice" not in name and "app" not in name) else None
    assert quota_of(quotas, "bob", "other") == expect_other


def test_no_quota_without_configs_or_without_a_client_id_for_client_levels() -> None:
    assert quota_of({}, "alice", "app") is None
    assert quota_of({entity(client=D): 1.0}, "alice", "") is None


def test_who_shares_a_rate_follows_the_level() -> None:
    # A user quota is shared by all the user's client ids.
    assert tags_for({entity("alice"): 1.0}, "alice", "app") == ("alice", "")
    assert tags_for({entity(D): 1.0}, "alice", "app") == ("alice", "")
    # A client-id quota is shared by every user of that client id.
    assert tags_for({entity(client="app"): 1.0}, "alice", "app") == ("", "app")
    # A (user, client-id) quota belongs to the pair.
    assert tags_for({entity(D, D): 1.0}, "alice", "app") == ("alice", "app")


def _manager(quotas: dict[QuotaEntity, float], **kwargs: int) -> ClientQuotaManager:
    return ClientQuotaManager(lambda: quotas, RATE, **kwargs)


def test_recording_over_the_quota_earns_kafkas_throttle_time() -> None:
    manager = _manager({entity("alice"): 100_000.0})
    assert manager.record("alice", "app", 1_000_000, now_ms=0) == 0  # 100 kB/s over 10 s
    # Another client id of alice shares her rate: now 200 kB/s, throttled 10 s.
    assert manager.record("alice", "other", 1_000_000, now_ms=0) == 10_000
    # bob has no quota and is never throttled.
    assert manager.record("bob", "app", 50_000_000, now_ms=0) == 0


def test_default_levels_give_each_client_its_own_rate() -> None:
    manager = _manager({entity(client=D): 100_000.0})
    assert manager.record("alice", "one", 1_000_000, now_ms=0) == 0
    assert manager.record("alice", "two", 1_000_000, now_ms=0) == 0


def test_unrecord_takes_a_value_back() -> None:
    manager = _manager({entity(client="app"): 100_000.0})
    manager.record("u", "app", 1_000_000, now_ms=0)
    manager.unrecord("u", "app", 1_000_000, now_ms=0)
    assert manager.record("u", "app", 1_000_000, now_ms=0) == 0


def test_throttle_is_bounded_where_kafka_bounds_it() -> None:
    manager = _manager({entity(client="app"): 1.0}, max_throttle_ms=1000)
    assert manager.record("u", "app", 1_000_000, now_ms=0) == 1000


def test_max_value_in_window_caps_a_fetch_at_what_the_window_allows() -> None:
    manager = _manager({entity(client="app"): 1000.0})
    assert manager.max_value_in_window("u", "app") == 10_000.0  # 1000 B/s * 10 windows of 1 s
    assert manager.max_value_in_window("u", "other") is None


def test_silent_clients_expire_and_the_count_is_bounded() -> None:
    manager = _manager({entity(client=D): 1.0}, expire_ms=60_000, sensors_max=3)
    for n in range(3):
        manager.record("u", f"c{n}", 1, now_ms=0)
    assert manager.rate_count == 3
    manager.record("u", "c3", 1, now_ms=1)  # over the bound: the least recent goes
    assert manager.rate_count == 3
    manager.record("u", "c4", 1, now_ms=120_000)  # everyone else was silent for 2 minutes
    assert manager.rate_count == 1


def test_nothing_is_kept_while_no_entity_sets_the_key() -> None:
    manager = _manager({})
    assert manager.record("u", "c", 10**9, now_ms=0) == 0
    assert manager.rate_count == 0
    assert not manager.enabled
