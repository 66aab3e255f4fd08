"""A request sees the effects of every earlier request on its connection (Kafka's rule).

Each test writes two requests back to back on one raw connection before reading either
response, as pipelining clients do (confluent-kafka's AdminClient sends DeleteRecords and then
ListOffsets this way), and checks that the second request observed the first one's effect,
over many repetitions: before the broker ordered effects, a pair like DeleteRecords ->
ListOffsets(earliest) saw the old log start about 7 times in 10.

The last tests check what ordering must not cost: a Fetch parked on one connection does not
hold up a Produce on another, a parked Fetch does not hold up the requests behind it on its own
connection, and pipelined acks=all Produce requests still share one fsync.
"""

from __future__ import annotations

import datetime
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import pytest

from shoal.embedded import EmbeddedBroker
from shoal.protocol import decode_response
from tests.server.wire import FETCH_VERSION, WireClient, batch_of, fetch_values, produce_values
from tests.support.broker import run_on_loop

REPETITIONS: Final = 1_000
"""Each pair is tried this many times; one miss fails the test."""
SLOW_REPETITIONS: Final = 250
"""For the pairs whose first request writes files (a topic, a config, a group's state): a
broker that did not order effects missed within the first few tries (DeleteRecords ->
ListOffsets about 7 times in 10), so 250 still catch one, at a quarter of the ~20 s each
that 1,000 took in CI."""

Call = tuple[int, int, Mapping[str, Any]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("order")), group_initial_rebalance_delay_ms=0
    ) as embedded:
        yield embedded


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap_servers) as wire:
        yield wire


def pipeline(client: WireClient, calls: Sequence[Call]) -> list[Any]:
    """Send every call in one write, then read the responses in order."""
    frames = [client.encode(key, version, values) for key, version, values in calls]
    client.send_raw(b"".join(frame for _, frame in frames))
    return [
        client.receive(key, version, correlation_id)
        for (key, version, _), (correlation_id, _) in zip(calls, frames, strict=True)
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(client: WireClient, name: str, partitions: int = 1) -> None:
    response = client.request(19, 7, create_topics_values(name, partitions))
    assert response.topics[0].error_code == 0, response


def create_topics_values(name: str, partitions: int = 1) -> dict[str, Any]:
    return {
        "topics": [
            {"name": name, "num_partitions": partitions, "replication_factor": 1, "configs": []}
        ],
        "timeout": datetime.timedelta(seconds=10),
        "validate_only": False,
    }


@pytest.mark.slow
def test_create_topics_then_metadata(client: WireClient) -> None:
    misses = 0
    for _ in range(SLOW_REPETITIONS):
        name = unique("order-ct")
        created, metadata = pipeline(
            client,
            [
                (19, 7, create_topics_values(name)),
                (3, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False}),
            ],
        )
        assert created.topics[0].error_code == 0, created
        misses += metadata.topics[0].error_code != 0
    assert misses == 0, f"Metadata missed the topic created just before it {misses} times"


def commit_values(group: str, topic: str, offset: int) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id_or_member_epoch": -1,
        "member_id": "",
        "group_instance_id": None,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": 0,
                        "committed_offset": offset,
                        "committed_leader_epoch": -1,
                        "committed_metadata": "",
                    }
                ],
            }
        ],
    }


def test_offset_commit_then_offset_fetch(client: WireClient) -> None:
    topic, group = unique("order-oc"), unique("group")
    create_topic(client, topic)
    fetch = {
        "groups": [{"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}]}],
        "require_stable": False,
    }
    seen = []
    for offset in range(REPETITIONS):
        committed, fetched = pipeline(
            client, [(8, 8, commit_values(group, topic, offset)), (9, 8, fetch)]
        )
        assert committed.topics[0].partitions[0].error_code == 0, committed
        seen.append(fetched.groups[0].topics[0].partitions[0].committed_offset)
    misses = [(i, got) for i, got in enumerate(seen) if got != i]
    assert not misses, f"OffsetFetch missed the commit before it: (expected, got) {misses[:5]}"


def test_delete_records_then_list_offsets_and_fetch(client: WireClient) -> None:
    topic = unique("order-dr")
    create_topic(client, topic)
    produced = client.produce(topic, 0, batch_of([b"v"] * (REPETITIONS + 1)))
    assert produced.error_code == 0, produced
    list_earliest = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -2}]},
        ],
    }
    misses = []
    for start in range(1, REPETITIONS + 1):
        delete = {
            "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": start}]}],
            "timeout": datetime.timedelta(seconds=10),
        }
        deleted, listed, fetched = pipeline(
            client,
            [(21, 2, delete), (2, 7, list_earliest), (1, FETCH_VERSION, fetch_values(topic, 0))],
        )
        assert deleted.topics[0].partitions[0].error_code == 0, deleted
        earliest = listed.topics[0].partitions[0].offset
        fetch_error = fetched.responses[0].partitions[0].error_code
        # Offset 0 is below the new log start: OFFSET_OUT_OF_RANGE (1) once the delete is seen.
        if earliest != start or fetch_error != 1:
            misses.append((start, earliest, fetch_error))
    assert not misses, f"(log start, ListOffsets earliest, Fetch error) missed: {misses[:5]}"


@pytest.mark.slow
def test_alter_configs_then_describe_configs(client: WireClient) -> None:
    topic = unique("order-ac")
    create_topic(client, topic)
    describe = {
        "resources": [
            {"resource_type": 2, "resource_name": topic, "configuration_keys": ["retention.ms"]}
        ],
        "include_synonyms": False,
        "include_documentation": False,
    }
    misses = []
    for n in range(SLOW_REPETITIONS):
        retention_ms = str(3_600_000 + n)
        alter = {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": topic,
                    "configs": [
                        {"name": "retention.ms", "config_operation": 0, "value": retention_ms}
                    ],
                }
            ],
            "validate_only": False,
        }
        altered, described = pipeline(client, [(44, 1, alter), (32, 4, describe)])
        assert altered.responses[0].error_code == 0, altered
        got = described.results[0].configs[0].value
        if got != retention_ms:
            misses.append((retention_ms, got))
    assert not misses, f"DescribeConfigs missed the change before it: {misses[:5]}"


def join_values(group: str, member_id: str, metadata: bytes) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout": datetime.timedelta(seconds=30),
        "rebalance_timeout": datetime.timedelta(seconds=30),
        "member_id": member_id,
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": metadata}],
    }


def heartbeat_values(group: str, generation: int, member_id: str) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": None,
    }


def sync_values(group: str, generation: int, member_id: str) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": None,
        "protocol_type": "consumer",
        "protocol_name": "range",
        "assignments": [{"member_id": member_id, "assignment": b"a"}],
    }


def join_alone(client: WireClient, group: str) -> tuple[str, int]:
    """Join ``group`` as its only member; (member id, generation) once it is Stable."""
    first = client.request(11, 5, join_values(group, "", b"m"))
    assert first.error_code == 79, first  # MEMBER_ID_REQUIRED, then join with the id
    member_id = first.member_id
    joined = client.request(11, 5, join_values(group, member_id, b"m"))
    assert joined.error_code == 0, joined
    synced = client.request(14, 5, sync_values(group, joined.generation_id, member_id))
    assert synced.error_code == 0, synced
    return member_id, joined.generation_id


def test_join_group_then_heartbeat(client: WireClient) -> None:
    """A rejoin with new metadata starts a new generation: a heartbeat pipelined behind it with
    the old generation must see that (ILLEGAL_GENERATION), not the Stable group before it."""
    group = unique("order-jg")
    member_id, generation = join_alone(client, group)
    misses = []
    for n in range(REPETITIONS):
        joined, beat = pipeline(
            client,
            [
                (11, 5, join_values(group, member_id, f"m{n}".encode())),
                (12, 4, heartbeat_values(group, generation, member_id)),
            ],
        )
        assert joined.error_code == 0 and joined.generation_id == generation + 1, joined
        if beat.error_code != 22:  # ILLEGAL_GENERATION
            misses.append(beat.error_code)
        synced = client.request(14, 5, sync_values(group, joined.generation_id, member_id))
        assert synced.error_code == 0, synced
        generation = joined.generation_id
    assert not misses, f"the heartbeat missed the rejoin before it: errors {misses[:5]}"


@pytest.mark.slow
def test_sync_group_then_heartbeat_and_leave_group_then_heartbeat(client: WireClient) -> None:
    misses = []
    for _ in range(SLOW_REPETITIONS):
        group = unique("order-sg")
        first = client.request(11, 5, join_values(group, "", b"m"))
        member_id = first.member_id
        joined = client.request(11, 5, join_values(group, member_id, b"m"))
        generation = joined.generation_id
        leave = {"group_id": group, "members": [{"member_id": member_id}]}
        synced, beat, left, beat_after_leave = pipeline(
            client,
            [
                (14, 5, sync_values(group, generation, member_id)),
                (12, 4, heartbeat_values(group, generation, member_id)),
                (13, 4, leave),
                (12, 4, heartbeat_values(group, generation, member_id)),
            ],
        )
        assert synced.error_code == 0 and left.error_code == 0, (synced, left)
        # Stable after the sync: NONE; after the leave the member is unknown (25).
        if (beat.error_code, beat_after_leave.error_code) != (0, 25):
            misses.append((beat.error_code, beat_after_leave.error_code))
    assert not misses, f"heartbeats missed the sync/leave before them: {misses[:5]}"


def readable(sock: socket.socket) -> bool:
    """Whether the broker has sent anything on ``sock`` (without waiting for it)."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_parked_fetch_holds_up_nothing(client: WireClient, broker: EmbeddedBroker) -> None:
    """A Fetch long-poll waits without holding up a Produce on another connection, or the
    requests behind it on its own connection (whose responses still leave in order)."""
    parked_topic, other_topic = unique("order-parked"), unique("order-other")
    create_topic(client, parked_topic)
    create_topic(client, other_topic)
    with WireClient(broker.bootstrap_servers) as fetcher:
        parked_id = fetcher.send(
            1, FETCH_VERSION, fetch_values(parked_topic, 0, max_wait_ms=30_000, min_bytes=1)
        )
        behind_id, behind = fetcher.encode(0, 9, produce_values(other_topic, 0, batch_of([b"b"])))
        fetcher.send_raw(behind)
        # Another connection produces and reads its answer while the Fetch stays parked.
        produced = client.produce(other_topic, 0, batch_of([b"a"]))
        assert produced.error_code == 0, produced
        # The Produce behind the parked Fetch has been applied: a third connection sees both.
        with WireClient(broker.bootstrap_servers) as observer:
            latest = observer.request(
                2,
                7,
                {
                    "replica_id": -1,
                    "isolation_level": 0,
                    "topics": [
                        {
                            "name": other_topic,
                            "partitions": [{"partition_index": 0, "timestamp": -1}],
                        }
                    ],
                },
            )
        assert latest.topics[0].partitions[0].offset == 2, latest
        assert not readable(fetcher.sock), "the Fetch answered before it had records"
        # Records for the parked Fetch end its wait; then the Produce behind it is answered.
        assert client.produce(parked_topic, 0, batch_of([b"p"])).error_code == 0
        fetched = fetcher.receive(1, FETCH_VERSION, parked_id)
        assert fetched.responses[0].partitions[0].error_code == 0, fetched
        assert fetched.responses[0].partitions[0].records
        answered = fetcher.receive(0, 9, behind_id)
        assert answered.responses[0].partition_responses[0].error_code == 0, answered


def test_pipelined_acks_all_produce_requests_share_fsyncs(
    client: WireClient, broker: EmbeddedBroker
) -> None:
    topic = unique("order-fsync")
    create_topic(client, topic)
    requests = 50

    def fsyncs() -> int:
        inner = broker.app.broker
        assert inner is not None
        plog = inner.partition(topic, 0)
        assert plog is not None
        return plog.flush_count

    before = run_on_loop(broker, fsyncs)
    calls: list[Call] = [
        (0, 9, produce_values(topic, 0, batch_of([b"x"]), acks=-1)) for _ in range(requests)
    ]
    answers = pipeline(client, calls)
    offsets = [a.responses[0].partition_responses[0].base_offset for a in answers]
    assert offsets == list(range(requests))
    used = run_on_loop(broker, fsyncs) - before
    assert 1 <= used < requests / 2, f"{requests} pipelined acks=all batches took {used} fsyncs"


def test_responses_decode_in_order(client: WireClient) -> None:
    """A sanity check of the helper itself: correlation ids come back in request order."""
    frames = [client.encode(18, 3, {"client_software_name": "t"}) for _ in range(20)]
    client.send_raw(b"".join(f for _, f in frames))
    for correlation_id, _ in frames:
        got, _body = decode_response(client.read_frame(), 18, 3)
        assert got == correlation_id
