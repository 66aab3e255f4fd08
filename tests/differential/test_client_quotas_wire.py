"""DescribeClientQuotas and AlterClientQuotas with bad input, sent byte for byte the same to
Apache Kafka and to shoal: the same error codes and messages, per entity and per request, and
validate_only changing nothing on either."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey
from shoal.records import SimpleRecord, build_batch
from tests.differential.scenarios import TIMEOUT_S
from tests.peers.kafka_peer import KafkaPeer
from tests.server.wire import WireClient, fetch_values, produce_values

pytestmark = pytest.mark.integration


def _alter(
    client: WireClient,
    entries: list[tuple[list[tuple[str, str | None]], list[tuple[str, float | None]]]],
    *,
    validate_only: bool = False,
) -> list[tuple[int, str | None]]:
    response = client.request(
        ApiKey.ALTER_CLIENT_QUOTAS,
        1,
        {
            "entries": [
                {
                    "entity": [{"entity_type": k, "entity_name": n} for k, n in entity],
                    "ops": [
                        {"key": key, "value": value or 0.0, "remove": value is None}
                        for key, value in ops
                    ],
                }
                for entity, ops in entries
            ],
            "validate_only": validate_only,
        },
    )
    return [(int(e.error_code), e.error_message) for e in response.entries]


def _describe(
    client: WireClient, components: list[tuple[str, int, str | None]], *, strict: bool = False
) -> Any:
    return client.request(
        ApiKey.DESCRIBE_CLIENT_QUOTAS,
        1,
        {
            "components": [
                {"entity_type": k, "match_type": m, "match": v} for k, m, v in components
            ],
            "strict": strict,
        },
    )


# Each alone in its request: Kafka answers per entity, and its answer order is not the request's.
BAD_ALTERATIONS = [
    pytest.param([], [("producer_byte_rate", 1.0)], id="empty-entity"),
    pytest.param([("topic", "t")], [("producer_byte_rate", 1.0)], id="unknown-type"),
    pytest.param([("user", "")], [("producer_byte_rate", 1.0)], id="empty-name"),
    pytest.param(
        [("user", "a"), ("ip", "1.2.3.4")], [("producer_byte_rate", 1.0)], id="ip-and-user"
    ),
    pytest.param([("user", "a")], [("no_such_quota", 1.0)], id="unknown-key"),
    pytest.param([("user", "a")], [("connection_creation_rate", 1.0)], id="ip-key-on-user"),
    pytest.param([("ip", None)], [("producer_byte_rate", 1.0)], id="user-key-on-ip"),
    pytest.param([("user", "a")], [("producer_byte_rate", 0.0)], id="zero"),
    pytest.param([("user", "a")], [("consumer_byte_rate", -3.0)], id="negative"),
    pytest.param([("user", "a")], [("producer_byte_rate", 2.5)], id="fraction"),
    pytest.param([("ip", None)], [("connection_creation_rate", 2.0**31)], id="int-overflow"),
    pytest.param(
        [("user", "a")], [("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)], id="dup-key"
    ),
]


@pytest.fixture
def both(kafka_peer: KafkaPeer, shoal_target: EmbeddedBroker) -> tuple[str, str]:
    """The bootstrap addresses of Apache Kafka and of shoal."""
    return kafka_peer.bootstrap_servers, shoal_target.bootstrap_servers


@pytest.mark.parametrize(("entity", "ops"), BAD_ALTERATIONS)
def test_bad_alterations(
    both: tuple[str, str],
    entity: list[tuple[str, str | None]],
    ops: list[tuple[str, float | None]],
) -> None:
    answers = []
    for bootstrap in both:
        with WireClient(bootstrap) as client:
            answers.append(_alter(client, [(entity, ops)]))
    kafka, shoal = answers
    assert kafka[0][0] != 0, f"Apache Kafka accepted it: {kafka}"
    assert shoal == kafka


BAD_FILTERS = [
    pytest.param([("", 0, "x")], id="empty-type"),
    pytest.param([("user", 0, "a"), ("user", 2, None)], id="dup-type"),
    pytest.param([("group", 0, "a")], id="unknown-type"),
    pytest.param([("user", 0, None)], id="exact-null"),
    pytest.param([("user", 1, "a")], id="default-with-match"),
    pytest.param([("user", 2, "a")], id="specified-with-match"),
    pytest.param([("user", 7, None)], id="unknown-match-type"),
    pytest.param([("ip", 2, None), ("user", 2, None)], id="ip-and-user"),
]


@pytest.mark.parametrize("components", BAD_FILTERS)
def test_bad_filters(both: tuple[str, str], components: list[tuple[str, int, str | None]]) -> None:
    answers = []
    for bootstrap in both:
        with WireClient(bootstrap) as client:
            response = _describe(client, components)
            answers.append((int(response.error_code), response.error_message))
    kafka, shoal = answers
    assert kafka[0] != 0, f"Apache Kafka accepted it: {kafka}"
    assert shoal == kafka


def test_duplicates(target: str) -> None:
    """Kafka's answers to duplicates: a type twice in an entity, the last name wins; an entity
    twice, an error and the first occurrence applied."""
    first, last = f"d1-{uuid.uuid4().hex[:8]}", f"d2-{uuid.uuid4().hex[:8]}"
    with WireClient(target) as client:
        try:
            entity = [("user", first), ("user", last)]
            assert _alter(client, [(entity, [("producer_byte_rate", 1024.0)])]) == [(0, None)]
            twice = [
                ([("user", first)], [("producer_byte_rate", 2048.0)]),
                ([("user", first)], [("consumer_byte_rate", 4096.0)]),
            ]
            assert _alter(client, twice) == [
                (42, f"Ignoring duplicate entity ClientQuotaEntity(entries={{user={first}}})")
            ]
            assert _described_until(client, first, last) == {
                first: {"producer_byte_rate": 2048.0},
                last: {"producer_byte_rate": 1024.0},
            }
        finally:
            _alter(
                client,
                [
                    ([("user", first)], [("producer_byte_rate", None)]),
                    ([("user", last)], [("producer_byte_rate", None)]),
                ],
            )


def _described_until(client: WireClient, *users: str) -> dict[str, dict[str, float]]:
    """The quotas of ``users`` once all have some (Kafka applies a change a moment later)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        found = {}
        for entry in _describe(client, [("user", 2, None)], strict=True).entries or ():
            (name,) = [e.entity_name for e in entry.entity]
            if name in users:
                found[name] = {v.key: float(v.value) for v in entry.values}
        if len(found) == len(users) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_validate_only_changes_nothing(target: str) -> None:
    user = f"v-{uuid.uuid4().hex[:8]}"
    with WireClient(target) as client:
        assert _alter(
            client, [([("user", user)], [("producer_byte_rate", 1024.0)])], validate_only=True
        ) == [(0, None)]
        response = _describe(client, [("user", 0, user)])
        assert (int(response.error_code), list(response.entries or ())) == (0, [])


def test_advertised_versions_are_kafkas(both: tuple[str, str]) -> None:
    ranges = []
    for bootstrap in both:
        with WireClient(bootstrap) as client:
            response = client.api_versions()
            ranges.append(
                {
                    k.api_key: (k.min_version, k.max_version)
                    for k in response.api_keys
                    if k.api_key in (ApiKey.DESCRIBE_CLIENT_QUOTAS, ApiKey.ALTER_CLIENT_QUOTAS)
                }
            )
    kafka, shoal = ranges
    assert len(kafka) == 2
    assert shoal == kafka


def _create_topics(
    client: WireClient, version: int, topics: dict[str, int]
) -> tuple[int, list[tuple[str, int, str | None]]]:
    response = client.request(
        ApiKey.CREATE_TOPICS,
        version,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
                for name, partitions in topics.items()
            ],
            "timeout": 30_000,
            "validate_only": False,
        },
    )
    throttle = int(response.throttle_time.total_seconds() * 1000)
    results = [(t.name, int(t.error_code), t.error_message) for t in response.topics]
    return throttle, sorted(results)


@pytest.mark.parametrize("version", [5, 7], ids=["permissive-v5", "strict-v7"])
def test_controller_mutation_rate(both: tuple[str, str], version: int) -> None:
    """1 partition per second: eleven windows' credit, then CreateTopics v6+ is refused with
    THROTTLING_QUOTA_EXCEEDED and older versions are only throttled; on both brokers alike."""
    answers = []
    for bootstrap in both:
        mutator = f"mutator-{uuid.uuid4().hex[:8]}"
        prefix = f"mq-{uuid.uuid4().hex[:6]}"
        with WireClient(bootstrap) as admin, WireClient(bootstrap, client_id=mutator) as client:
            rate = [([("client-id", mutator)], [("controller_mutation_rate", 1.0)])]
            assert _alter(admin, rate) == [(0, None)]
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while True:  # Kafka applies the quota a moment after it answers
                    described = _describe(admin, [("client-id", 0, mutator)]).entries
                    if described or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                time.sleep(1.0)  # and its controller a moment after its broker
                throttle, results = _create_topics(
                    client, version, {f"{prefix}-a": 12, f"{prefix}-b": 1}
                )
                answers.append(
                    (throttle > 0, [(n.removeprefix(prefix), c, m) for n, c, m in results])
                )
            finally:
                created = [f"{prefix}-a", f"{prefix}-b"]
                admin.request(ApiKey.DELETE_TOPICS, 4, {"topic_names": created, "timeout": 30_000})
                _alter(admin, [([("client-id", mutator)], [("controller_mutation_rate", None)])])
    kafka, shoal = answers
    assert shoal == kafka


def test_controller_mutation_rate_on_partitions_and_deletes(both: tuple[str, str]) -> None:
    """CreatePartitions v3 and DeleteTopics v6 (strict): the request that overdraws the bucket
    is done, the ones after it are refused, alike on both brokers."""
    answers = []
    for bootstrap in both:
        mutator = f"mutator-{uuid.uuid4().hex[:8]}"
        prefix = f"mp-{uuid.uuid4().hex[:6]}"
        names = [f"{prefix}-a", f"{prefix}-b"]
        with WireClient(bootstrap) as admin, WireClient(bootstrap, client_id=mutator) as client:
            assert _create_topics(admin, 7, dict.fromkeys(names, 1))[1][0][1] == 0
            rate = [([("client-id", mutator)], [("controller_mutation_rate", 1.0)])]
            assert _alter(admin, rate) == [(0, None)]
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while not _describe(admin, [("client-id", 0, mutator)]).entries:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                time.sleep(1.0)  # Kafka's controller applies it a moment after its broker
                # One topic per request: Kafka may take a request's topics in any order.
                grown = [
                    client.request(
                        ApiKey.CREATE_PARTITIONS,
                        3,
                        {
                            "topics": [{"name": name, "count": count, "assignments": None}],
                            "timeout": 30_000,
                            "validate_only": False,
                        },
                    ).results[0]
                    for name, count in ((names[0], 13), (names[1], 2))
                ]
                deleted = client.request(
                    ApiKey.DELETE_TOPICS,
                    6,
                    {
                        "topics": [{"name": name, "topic_id": None} for name in names],
                        "timeout": 30_000,
                    },
                )
                answers.append(
                    (
                        sorted(
                            (r.name.removeprefix(prefix), int(r.error_code), r.error_message)
                            for r in grown
                        ),
                        # Which of the two topics overdraws the bucket follows the order the
                        # broker takes them in (Kafka's is a hash order of the random names):
                        # compare the answers, not which name got which.
                        sorted((int(r.error_code), r.error_message) for r in deleted.responses),
                        deleted.throttle_time.total_seconds() > 0,
                    )
                )
            finally:
                admin.request(ApiKey.DELETE_TOPICS, 4, {"topic_names": names, "timeout": 30_000})
                _alter(admin, [([("client-id", mutator)], [("controller_mutation_rate", None)])])
    kafka, shoal = answers
    assert shoal == kafka


def test_first_throttle_time_is_kafkas(both: tuple[str, str]) -> None:
    """The same Produce request, the first of its client, over the same producer_byte_rate:
    Kafka and shoal compute the same throttle time (a new client's rate is spread over ten
    windows: (bytes / 10 s - quota) / quota * 10 s)."""
    batch = build_batch([SimpleRecord(value=b"p" * 20_000)])
    throttles = []
    for bootstrap in both:
        producer, topic = f"producer-{uuid.uuid4().hex[:8]}", f"pq-{uuid.uuid4().hex[:8]}"
        with WireClient(bootstrap) as admin, WireClient(bootstrap, client_id=producer) as client:
            assert _create_topics(admin, 7, {topic: 1})[1][0][1] == 0
            rate = [([("client-id", producer)], [("producer_byte_rate", 1000.0)])]
            assert _alter(admin, rate) == [(0, None)]
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while not _describe(admin, [("client-id", 0, producer)]).entries:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                time.sleep(1.0)  # Kafka's quota manager applies it a moment after
                response = client.request(0, 9, produce_values(topic, 0, batch))
                assert response.responses[0].partition_responses[0].error_code == 0
                throttles.append(int(response.throttle_time.total_seconds() * 1000))
            finally:
                admin.request(ApiKey.DELETE_TOPICS, 4, {"topic_names": [topic], "timeout": 30_000})
                _alter(admin, [([("client-id", producer)], [("producer_byte_rate", None)])])
    kafka, shoal = throttles
    assert kafka > 0
    assert shoal == kafka


def test_first_fetch_throttle_is_kafkas(both: tuple[str, str]) -> None:
    """The same Fetch, the first of its client, over the same consumer_byte_rate: both brokers
    answer empty with the same throttle time (Kafka counts the response's size)."""
    batch = build_batch([SimpleRecord(value=b"f" * 20_000)])
    answers = []
    for bootstrap in both:
        reader, topic = f"reader-{uuid.uuid4().hex[:8]}", f"fq-{uuid.uuid4().hex[:8]}"
        with WireClient(bootstrap) as admin, WireClient(bootstrap, client_id=reader) as client:
            assert _create_topics(admin, 7, {topic: 1})[1][0][1] == 0
            assert admin.produce_once_led(topic, 0, batch).error_code == 0
            rate = [([("client-id", reader)], [("consumer_byte_rate", 1000.0)])]
            assert _alter(admin, rate) == [(0, None)]
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while not _describe(admin, [("client-id", 0, reader)]).entries:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                time.sleep(1.0)  # Kafka's quota manager applies it a moment after
                response = client.request(1, 11, fetch_values(topic, 0))
                answers.append(
                    (int(response.throttle_time.total_seconds() * 1000), len(response.responses))
                )
            finally:
                admin.request(ApiKey.DELETE_TOPICS, 4, {"topic_names": [topic], "timeout": 30_000})
                _alter(admin, [([("client-id", reader)], [("consumer_byte_rate", None)])])
    kafka, shoal = answers
    assert kafka[0] > 0
    assert shoal == kafka
