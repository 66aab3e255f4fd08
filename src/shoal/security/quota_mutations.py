"""``controller_mutation_rate`` (KIP-599): partitions a client may create or delete per second,
as Kafka's ``ControllerMutationQuotaManager`` meters them with a token bucket.

Per request, a :class:`MutationQuota` is either *strict* (CreateTopics v6+, CreatePartitions
v3+, DeleteTopics v5+: once the bucket is overdrawn, every further topic of the request is
refused with THROTTLING_QUOTA_EXCEEDED) or *permissive* (older versions, whose clients do not
know that error: the mutation is done and the response only carries a throttle time). Which
quota applies, and who shares a bucket, follows the same eight levels as the byte rates.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from shoal.security.quota_entity import QuotaEntity
from shoal.security.quota_manager import SENSOR_EXPIRE_MS, SENSORS_MAX, Tags, limit_for, tags_for
from shoal.security.quota_rate import RateConfig, TokenBucket, bucket_throttle_time_ms

THROTTLING_QUOTA_EXCEEDED_MESSAGE: Final = "The throttling quota has been exceeded."


class MutationQuotaExceeded(Exception):
    def __init__(self, throttle_ms: int) -> None:
        super().__init__(THROTTLING_QUOTA_EXCEEDED_MESSAGE)
        self.throttle_ms = throttle_ms


class MutationQuota:
    """One request's view of its client's bucket (Kafka's Strict and Permissive
    ControllerMutationQuota)."""

    def __init__(
        self,
        bucket: TokenBucket | None,
        bound: float | None,
        *,
        strict: bool,
        clock_ms: Callable[[], int],
    ) -> None:
        self._bucket = bucket
        self._bound = bound
        self._strict = strict
        self._clock_ms = clock_ms
        self._last_throttle_ms = 0
        self._last_recorded_ms = 0

    def charge(self, partitions: int) -> None:
        """Count ``partitions`` created or deleted; :class:`MutationQuotaExceeded` (nothing
        counted) when strict and the bucket is already overdrawn."""
        bucket, bound = self._bucket, self._bound
        if bucket is None or bound is None:
            return
        now_ms = self._clock_ms()
        if self._strict:
            throttle = bucket_throttle_time_ms(bucket.measure(bound, now_ms), bound)
            if throttle > 0:
                self._note(throttle, now_ms)
                raise MutationQuotaExceeded(throttle)
            bucket.record(partitions, bound, now_ms)
            return
        bucket.record(partitions, bound, now_ms)
        throttle = bucket_throttle_time_ms(bucket.measure(bound, now_ms), bound)
        if throttle > 0:
            self._note(throttle, now_ms)

    def _note(self, throttle_ms: int, now_ms: int) -> None:
        self._last_throttle_ms, self._last_recorded_ms = throttle_ms, now_ms

    @property
    def throttle_ms(self) -> int:
        """The throttle the response carries: the last one earned, less the time since."""
        if not self._last_throttle_ms:
            return 0
        elapsed = self._clock_ms() - self._last_recorded_ms
        return max(0, self._last_throttle_ms - elapsed)


class ControllerMutationQuotas:
    def __init__(
        self,
        quotas: Callable[[], Mapping[QuotaEntity, float]],
        config: RateConfig,
        clock_ms: Callable[[], int],
        *,
        expire_ms: int = SENSOR_EXPIRE_MS,
        buckets_max: int = SENSORS_MAX,
    ) -> None:
        self._quotas = quotas
        self._config = config
        self._clock_ms = clock_ms
        self._expire_ms = expire_ms
        self._buckets_max = buckets_max
        self._buckets: OrderedDict[Tags, TokenBucket] = OrderedDict()

    def for_request(self, user: str, client_id: str, *, strict: bool) -> MutationQuota:
        quotas = self._quotas()
        if not quotas:
            return MutationQuota(None, None, strict=strict, clock_ms=self._clock_ms)
        tags = tags_for(quotas, user, client_id)
        bound = limit_for(quotas, tags)
        if bound is None:
            return MutationQuota(None, None, strict=strict, clock_ms=self._clock_ms)
        now_ms = self._clock_ms()
        bucket = self._buckets.get(tags)
        if bucket is None:
            self._expire(now_ms)
            bucket = self._buckets[tags] = TokenBucket(self._config, bound, now_ms)
        else:
            self._buckets.move_to_end(tags)
        return MutationQuota(bucket, bound, strict=strict, clock_ms=self._clock_ms)

    def _expire(self, now_ms: int) -> None:
        while self._buckets:
            tags, bucket = next(iter(self._buckets.items()))
            idle = now_ms - bucket.idle_since_ms() >= self._expire_ms
            if not idle and len(self._buckets) < self._buckets_max:
                return
            del self._buckets[tags]
