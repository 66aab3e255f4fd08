"""controller_mutation_rate: Kafka's token bucket, and strict versus permissive quotas, on an
injected clock."""

from __future__ import annotations

import pytest

from shoal.security.quota_entity import QuotaEntity
from shoal.security.quota_mutations import ControllerMutationQuotas, MutationQuotaExceeded
from shoal.security.quota_rate import RateConfig, TokenBucket, bucket_throttle_time_ms

RATE = RateConfig(samples=11, window_ms=1000)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_the_bucket_holds_eleven_windows_and_refills_at_the_rate() -> None:
    bucket = TokenBucket(RATE, bound=2.0, now_ms=0)
    assert bucket.measure(2.0, 0) == 22.0  # burst: 11 windows of 1 s at 2 per second
    bucket.record(25, 2.0, 0)
    assert bucket.measure(2.0, 0) == -3.0
    assert bucket_throttle_time_ms(-3.0, 2.0) == 1500  # -tokens / rate
    assert bucket.measure(2.0, 1500) == 0.0
    assert bucket.measure(2.0, 100_000) == 22.0  # never above the burst


def quotas_with(rate: float, clock: Clock) -> ControllerMutationQuotas:
    values = {QuotaEntity.of({"client-id": "admin"}): rate}
    return ControllerMutationQuotas(lambda: values, RATE, clock)


def test_strict_refuses_once_overdrawn_and_reports_the_wait() -> None:
    clock = Clock()
    mutations = quotas_with(1.0, clock)
    quota = mutations.for_request("ANONYMOUS", "admin", strict=True)
    quota.charge(12)  # 11 credits: allowed, and overdrawn by 1
    assert quota.throttle_ms == 0  # strict quotas throttle only what they refuse
    with pytest.raises(MutationQuotaExceeded) as refused:
        quota.charge(1)
    assert refused.value.throttle_ms == 1000
    clock.ms += 400
    assert quota.throttle_ms == 600  # less the time since
    clock.ms += 600
    mutations.for_request("ANONYMOUS", "admin", strict=True).charge(1)  # refilled: allowed


def test_permissive_never_refuses_and_throttles() -> None:
    clock = Clock()
    quota = quotas_with(1.0, clock).for_request("ANONYMOUS", "admin", strict=False)
    quota.charge(15)
    quota.charge(1)
    assert quota.throttle_ms == 5000


def test_clients_without_the_quota_are_not_metered() -> None:
    clock = Clock()
    quota = quotas_with(1.0, clock).for_request("ANONYMOUS", "someone-else", strict=True)
    for _ in range(100):
        quota.charge(1000)
    assert quota.throttle_ms == 0
