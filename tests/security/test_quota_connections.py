"""Connection creation rates, as Kafka's ConnectionQuotas counts them, on an injected clock."""

from __future__ import annotations

from shoal.security.quota_entity import QuotaEntity
from shoal.security.quota_rate import RateConfig
from shoal.security.quotas import UNLIMITED_CONNECTION_RATE, ConnectionRateQuota

RATE = RateConfig(samples=11, window_ms=1000)


def test_the_broker_wide_rate_delays_past_its_limit_by_at_most_a_window() -> None:
    quota = ConnectionRateQuota(dict, broker_rate=2, config=RATE)
    # A young rate spans ten windows: twenty connections at once are exactly 2 per second.
    assert [quota.broker_throttle_ms(0) for _ in range(20)] == [0] * 20
    assert quota.broker_throttle_ms(0) == 500  # 21 / 10 s = 2.1/s: (2.1 - 2) / 2 * 10 s
    assert quota.broker_throttle_ms(0) == 1000  # capped at one window, as Kafka caps it


def test_no_broker_limit_counts_nothing() -> None:
    quota = ConnectionRateQuota(dict, broker_rate=UNLIMITED_CONNECTION_RATE, config=RATE)
    assert all(quota.broker_throttle_ms(0) == 0 for _ in range(10_000))


def test_an_ips_own_quota_wins_over_the_default_and_refused_ones_are_not_counted() -> None:
    values = {
        QuotaEntity.of({"ip": None}): 100.0,
        QuotaEntity.of({"ip": "10.0.0.1"}): 1.0,
    }
    quota = ConnectionRateQuota(lambda: values, UNLIMITED_CONNECTION_RATE, RATE)
    assert quota.ip_quota("10.0.0.1") == 1.0
    assert quota.ip_quota("10.0.0.2") == 100.0
    assert [quota.ip_throttle_ms("10.0.0.1", 0) for _ in range(10)] == [0] * 10
    first = quota.ip_throttle_ms("10.0.0.1", 0)
    assert first > 0
    # The refused connection was taken back: the next one is refused for the same time.
    assert quota.ip_throttle_ms("10.0.0.1", 0) == first
    # Other addresses have the default's room.
    assert quota.ip_throttle_ms("10.0.0.2", 0) == 0


def test_without_ip_quotas_nothing_is_kept() -> None:
    quota = ConnectionRateQuota(dict, UNLIMITED_CONNECTION_RATE, RATE)
    assert quota.ip_throttle_ms("10.0.0.1", 0) == 0
    assert quota.ip_quota("10.0.0.1") is None


def test_addresses_silent_for_every_window_are_forgotten() -> None:
    values = {QuotaEntity.of({"ip": None}): 100.0}
    quota = ConnectionRateQuota(lambda: values, UNLIMITED_CONNECTION_RATE, RATE)
    for n in range(50):
        quota.ip_throttle_ms(f"10.0.0.{n}", 0)
    assert quota.tracked_ips == 50
    quota.ip_throttle_ms("10.0.1.1", 11_000)  # eleven windows later
    assert quota.tracked_ips == 1
