"""Rates per client and the throttle times they earn, as Kafka's ``ClientQuotaManager`` keeps
them: one manager per quota key (produce bytes, fetch bytes, request time).

Which quota applies to a request of (user, client id) is the first of Kafka's eight levels that
sets the key::

    /users/<u>/clients/<c>        /users/<u>/clients/<default>   /users/<u>
    /users/<default>/clients/<c>  /users/<default>/clients/<default>   /users/<default>
    /clients/<c>                  /clients/<default>

and the level also decides who shares a rate (Kafka's "metric tags"): a quota on a user
(/users/<u> or /users/<default>) is shared by all of that user's client ids, a quota on a
client id (/clients/...) by every user of that client id, and a (user, client id) quota by
that pair alone. A default level gives each user or client id its own rate under that limit.

State stays bounded: a rate that sees no traffic for ``expire_ms`` (Kafka's one hour) is
dropped, and past ``sensors_max`` rates the least recently used goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from shoal.security.quota_entity import CLIENT_ID, USER, QuotaEntity
from shoal.security.quota_rate import RateConfig, SampledRate, throttle_time_ms

SENSOR_EXPIRE_MS: Final = 3_600_000
"""Kafka's InactiveSensorExpirationTimeSeconds: a client silent for an hour loses its rate."""
SENSORS_MAX: Final = 100_000
"""Rates held per quota key at most, whatever the number of client ids clients invent."""

Tags = tuple[str, str]
"""(user, client id) a rate is kept for; "" where the level shares it across that part."""


def _entity(user: str | bool | None, client: str | bool | None) -> QuotaEntity:
    """The entity of a level; ``False`` leaves a type out, ``None`` is its default.

    Built directly in sorted order ("client-id" < "user"), as :meth:`QuotaEntity.of` would."""
    parts: list[tuple[str, str | None]] = []
    if client is not False:
        parts.append((CLIENT_ID, client if isinstance(client, str) else None))
    if user is not False:
        parts.append((USER, user if isinstance(user, str) else None))
    return QuotaEntity(tuple(parts))


def tags_for(quotas: Mapping[QuotaEntity, float], user: str, client_id: str) -> Tags:
    """Who shares the rate of a request by (``user``, ``client_id``): Kafka's
    ``DefaultQuotaCallback.quotaMetricTags``, walking the eight levels in order."""
    if _entity(user, client_id) in quotas or _entity(user, None) in quotas:
        return user, client_id
    if _entity(user, False) in quotas:
        return user, ""
    if _entity(None, client_id) in quotas or _entity(None, None) in quotas:
        return user, client_id
    if _entity(None, False) in quotas:
        return user, ""
    return "", client_id


def limit_for(quotas: Mapping[QuotaEntity, float], tags: Tags) -> float | None:
    """The quota of a rate kept for ``tags``: Kafka's ``DefaultQuotaCallback.quotaLimit``."""
    user, client_id = tags
    candidates: tuple[QuotaEntity, ...]
    if user and client_id:
        candidates = (
            _entity(user, client_id),
            _entity(user, None),
            _entity(None, client_id),
            _entity(None, None),
        )
    elif user:
        candidates = (_entity(user, False), _entity(None, False))
    elif client_id:
        candidates = (_entity(False, client_id), _entity(False, None))
    else:
        return None
    for entity in candidates:
        value = quotas.get(entity)
        if value is not None:
            return value
    return None


class ClientQuotaManager:
    """The rates of one quota key (e.g. ``producer_byte_rate``) and the throttle they earn."""

    def __init__(
        self,
        quotas: Callable[[], Mapping[QuotaEntity, float]],
        config: RateConfig,
        *,
        max_throttle_ms: int | None = None,
        expire_ms: int = SENSOR_EXPIRE_MS,
        sensors_max: int = SENSORS_MAX,
    ) -> None:
        self._quotas = quotas
        """Every entity's value of this manager's key, read afresh (quotas change at runtime)."""
        self._config = config
        self._max_throttle_ms = max_throttle_ms
        self._expire_ms = expire_ms
        self._sensors_max = sensors_max
        self._rates: OrderedDict[Tags, SampledRate] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether any entity sets this key (Kafka records nothing until one does)."""
        return bool(self._quotas())

    @property
    def rate_count(self) -> int:
        return len(self._rates)

    def quota(self, user: str, client_id: str) -> float | None:
        """The quota that applies to (``user``, ``client_id``), or None."""
        quotas = self._quotas()
        return limit_for(quotas, tags_for(quotas, user, client_id)) if quotas else None

    def record(self, user: str, client_id: str, value: float, now_ms: int) -> int:
        """Count ``value`` for the client at ``now_ms``; the throttle time it earned, in ms."""
        quotas = self._quotas()
        if not quotas:
            return 0
        tags = tags_for(quotas, user, client_id)
        bound = limit_for(quotas, tags)
        rate = self._rate(tags, now_ms)
        rate.record(value, now_ms)
        if bound is None:
            return 0
        throttle = throttle_time_ms(rate, bound, now_ms)
        if self._max_throttle_ms is not None:
            throttle = min(throttle, self._max_throttle_ms)
        return throttle

    def unrecord(self, user: str, client_id: str, value: float, now_ms: int) -> None:
        """Take back a value recorded for a response that was not sent (a throttled Fetch
        answers empty), as Kafka records its negative."""
        quotas = self._quotas()
        if quotas:
            self._rate(tags_for(quotas, user, client_id), now_ms).record(-value, now_ms)

    def max_value_in_window(self, user: str, client_id: str) -> float | None:
        """The most a client may take at once without being throttled after a silent window
        (Kafka caps a consumer's fetch.max.bytes by it, so one Fetch cannot earn a throttle
        longer than the whole window and starve the consumer)."""
        bound = self.quota(user, client_id)
        if bound is None:
            return None
        return bound * (self._config.samples - 1) * self._config.window_ms / 1000.0

    def _rate(self, tags: Tags, now_ms: int) -> SampledRate:
        rate = self._rates.get(tags)
        if rate is None:
            self._expire(now_ms)
            rate = self._rates[tags] = SampledRate(self._config)
        else:
            self._rates.move_to_end(tags)
        return rate

    def _expire(self, now_ms: int) -> None:
        # Least recently used first: stop at the first rate still in use.
        while self._rates:
            tags, rate = next(iter(self._rates.items()))
            idle = now_ms - rate.idle_since_ms() >= self._expire_ms
            if not idle and len(self._rates) < self._sensors_max:
                return
            del self._rates[tags]
