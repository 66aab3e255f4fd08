"""The broker's client quotas in one place: the durable configs and the rates they limit.

Kafka keeps one quota manager per key; so does this facade: ``produce``
(``producer_byte_rate``, request bytes of each Produce), ``fetch`` (``consumer_byte_rate``,
response bytes of each Fetch), ``request`` (``request_percentage``, the share of one thread's
time each client's requests take) and ``connections`` (``connection_creation_rate`` per IP,
and the broker-wide ``max.connection.creation.rate``), and ``mutations``
(``controller_mutation_rate``, partitions created or deleted per second, charged by the
CreateTopics, CreatePartitions and DeleteTopics handlers).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from shoal.clock import SYSTEM_CLOCK, Clock
from shoal.security.quota_entity import (
    CONNECTION_CREATION_RATE,
    CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE,
    IP,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    QuotaEntity,
)
from shoal.security.quota_manager import SENSORS_MAX, ClientQuotaManager
from shoal.security.quota_mutations import ControllerMutationQuotas
from shoal.security.quota_rate import RateConfig, SampledRate, throttle_time_ms
from shoal.security.quota_store import QuotaStore

UNLIMITED_CONNECTION_RATE: Final = 2**31 - 1
"""Kafka's default of max.connection.creation.rate and connection_creation_rate: no limit."""
NANOS_TO_PERCENT: Final = 100.0 / 1e9
"""A request's time in nanoseconds as percent-seconds of one thread (Kafka's request quota
counts time, so a rate of it is the percentage of a thread a client keeps busy)."""


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    quota_window_num: int = 11
    """quota.window.num: the windows a client's rate is measured over."""
    quota_window_size_seconds: int = 1
    """quota.window.size.seconds: the length of each window."""
    max_connection_creation_rate: int = UNLIMITED_CONNECTION_RATE
    """max.connection.creation.rate: new connections per second the broker accepts, across
    all clients; past it accepting waits."""

    def __post_init__(self) -> None:
        for name in ("quota_window_num", "quota_window_size_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_connection_creation_rate < 1:
            raise ValueError("max_connection_creation_rate must be at least 1")

    @property
    def rate(self) -> RateConfig:
        return RateConfig(self.quota_window_num, self.quota_window_size_seconds * 1000)


USER_PREFIX: Final = "User:"


def quota_user(principal: str) -> str:
    """The user name quotas know a principal by: ``User:alice`` → ``alice`` (Kafka uses the
    principal's name, so ``User:ANONYMOUS`` is the user ``ANONYMOUS``)."""
    return principal[len(USER_PREFIX) :] if principal.startswith(USER_PREFIX) else principal


class ClientQuotas:
    def __init__(
        self, store: QuotaStore, settings: QuotaSettings | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.store = store
        self.settings = settings or QuotaSettings()
        rate = self.settings.rate
        self.produce = ClientQuotaManager(lambda: store.values_of(PRODUCER_BYTE_RATE), rate)
        self.fetch = ClientQuotaManager(lambda: store.values_of(CONSUMER_BYTE_RATE), rate)
        # Kafka bounds the request quota's throttle by one window: request time is bursty,
        # and a long mute would idle the connection far past its excess.
        self.request = ClientQuotaManager(
            lambda: store.values_of(REQUEST_PERCENTAGE), rate, max_throttle_ms=rate.window_ms
        )
        self.mutations = ControllerMutationQuotas(
            lambda: store.values_of(CONTROLLER_MUTATION_RATE),
            rate,
            lambda: int(clock.monotonic_ms()),
        )
        self.connections = ConnectionRateQuota(
            lambda: store.values_of(CONNECTION_CREATION_RATE),
            self.settings.max_connection_creation_rate,
            rate,
        )

    @property
    def any_client_quota(self) -> bool:
        """Whether any (user, client-id) quota that the server enforces is set."""
        return self.produce.enabled or self.fetch.enabled or self.request.enabled


class ConnectionRateQuota:
    """Kafka's connection-creation rates (``ConnectionQuotas``): broker-wide, where being over
    makes the acceptor wait, and per IP, where being over closes the new connection after the
    throttle time without counting it."""

    def __init__(
        self,
        ip_quotas: Callable[[], Mapping[QuotaEntity, float]],
        broker_rate: int,
        config: RateConfig,
    ) -> None:
        self._ip_quotas = ip_quotas
        self._broker_rate = broker_rate
        self._config = config
        self._broker = SampledRate(config)
        self._ips: OrderedDict[str, SampledRate] = OrderedDict()
        """Least recently connected first, so expiry stops at the first address still in use."""
        # Kafka bounds both throttles by one window.
        self._max_throttle_ms = config.window_ms

    def broker_throttle_ms(self, now_ms: int) -> int:
        """Count one new connection; how long the acceptor waits before taking it."""
        if self._broker_rate >= UNLIMITED_CONNECTION_RATE:
            return 0
        self._broker.record(1.0, now_ms)
        return min(throttle_time_ms(self._broker, self._broker_rate, now_ms), self._max_throttle_ms)

    def ip_quota(self, ip: str) -> float | None:
        quotas = self._ip_quotas()
        value = quotas.get(QuotaEntity(((IP, ip),)))
        if value is None:
            value = quotas.get(QuotaEntity(((IP, None),)))
        return value

    def ip_throttle_ms(self, ip: str, now_ms: int) -> int:
        """Count a new connection from ``ip``; > 0 when it is over its quota, and is then not
        counted (Kafka closes it after that long)."""
        bound = self.ip_quota(ip)
        if bound is None:
            self._ips.pop(ip, None)
            return 0
        rate = self._ips.get(ip)
        if rate is None:
            self._expire(now_ms)
            rate = self._ips[ip] = SampledRate(self._config)
        else:
            self._ips.move_to_end(ip)
        rate.record(1.0, now_ms)
        throttle = min(throttle_time_ms(rate, bound, now_ms), self._max_throttle_ms)
        if throttle > 0:
            rate.record(-1.0, now_ms)
        return throttle

    def _expire(self, now_ms: int) -> None:
        # An address silent for all the windows has a rate of zero: forgetting it changes
        # nothing. Past SENSORS_MAX addresses the least recent goes regardless.
        span_ms = self._config.samples * self._config.window_ms
        while self._ips:
            ip, rate = next(iter(self._ips.items()))
            if now_ms - rate.idle_since_ms() < span_ms and len(self._ips) < SENSORS_MAX:
                return
            del self._ips[ip]

    @property
    def tracked_ips(self) -> int:
        return len(self._ips)
