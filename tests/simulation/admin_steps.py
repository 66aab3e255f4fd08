"""Topic admin steps of the simulation (a mixin of :class:`Simulation`): CreateTopics,
DeleteTopics and CreatePartitions of a second topic while a producer writes to it.

One admin client sends one admin request at a time (as an operator's tool does); the producer
writes whenever it has no request in flight, so its Produce races the admin requests. The
model keeps what a client may rely on:

* a batch acknowledged since the topic was last created, and before any DeleteTopics was sent
  afterwards, stays at its offset with its bytes (:func:`check_partition`);
* once a DeleteTopics answered NONE, no batch acknowledged before it was sent ever shows up
  again, in any later topic of that name, across every crash and power loss;
* a topic whose CreateTopics answered NONE exists (with at least the partitions answered)
  until a DeleteTopics is sent; one whose DeleteTopics answered NONE does not, until a
  CreateTopics is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from shoal.protocol import ApiKey, ErrorCode
from tests.simulation import producers as prod
from tests.simulation.model import (
    PartitionModel,
    Violation,
    check_partition,
    stamped_body,
    stored_batches,
)
from tests.simulation.node import InFlight

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object

ADMIN_TOPIC: Final = "adm"
ADMIN_PARTITIONS_MAX: Final = 4
CREATE_TOPICS: Final = (int(ApiKey.CREATE_TOPICS), 7)
DELETE_TOPICS: Final = (int(ApiKey.DELETE_TOPICS), 5)
CREATE_PARTITIONS: Final = (int(ApiKey.CREATE_PARTITIONS), 3)
ADMIN_TIMEOUT_MS: Final = 30_000

UNKNOWN_OUTCOME: Final = frozenset({ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.REQUEST_TIMED_OUT})
"""Admin answers after which the change may or may not have happened."""


@dataclass
class AdminModel:
    state: str = "absent"  # absent | present | unknown: what the last answered request says
    partitions: int = 0
    """Partitions a CreateTopics or CreatePartitions answered (a floor while present)."""
    models: dict[int, PartitionModel] = field(default_factory=dict)
    """Acknowledged batches of the topic as created last, until a DeleteTopics is sent."""
    generation: int = 0
    """Bumped when a DeleteTopics is sent: a Produce answered later was not acknowledged in
    the generation it was sent in, and is not relied on."""
    doomed: set[bytes] = field(default_factory=set)
    """Batches acknowledged before the DeleteTopics in flight was sent."""
    deleted: set[bytes] = field(default_factory=set)
    """Batches of a topic whose DeleteTopics answered NONE: never to be seen again."""
    flight: InFlight | None = None
    producer: prod.Producer = field(default_factory=lambda: prod.Producer("a0", idempotent=False))


class AdminSteps(_Base):
    admin: AdminModel

    def _admin(self) -> None:
        admin = self.admin
        if admin.flight is not None:
            self._note("admin: still waiting for its request")
            return
        assert self.node.broker is not None
        # Mostly the change that applies to the topic as Metadata shows it, sometimes one that
        # is refused (create an existing topic, delete or grow a missing one).
        exists = self.node.broker.topics.get(ADMIN_TOPIC) is not None
        create, delete = (0.1, 0.4) if exists else (0.8, 0.9)
        choice = self.rng.random()
        if choice < create:
            partitions = self.rng.randint(1, ADMIN_PARTITIONS_MAX - 1)
            self._note(f"admin: CreateTopics {ADMIN_TOPIC} partitions={partitions}")
            values = {
                "topics": [
                    {
                        "name": ADMIN_TOPIC,
                        "num_partitions": partitions,
                        "replication_factor": -1,
                        "assignments": [],
                        "configs": [],
                    }
                ],
                "timeout": ADMIN_TIMEOUT_MS,
                "validate_only": False,
            }
            admin.flight = self._send(
                CREATE_TOPICS, values, lambda f: self._on_create_topic(partitions, f)
            )
        elif choice < delete:
            self._note(f"admin: DeleteTopics {ADMIN_TOPIC}")
            admin.generation += 1
            admin.doomed |= {body for m in admin.models.values() for body in m.acked.values()}
            admin.models.clear()
            values = {"topic_names": [ADMIN_TOPIC], "timeout": ADMIN_TIMEOUT_MS}
            admin.flight = self._send(DELETE_TOPICS, values, self._on_delete_topic)
        else:
            count = self.rng.randint(1, ADMIN_PARTITIONS_MAX)
            self._note(f"admin: CreatePartitions {ADMIN_TOPIC} count={count}")
            values = {
                "topics": [{"name": ADMIN_TOPIC, "count": count, "assignments": None}],
                "timeout": ADMIN_TIMEOUT_MS,
                "validate_only": False,
            }
            admin.flight = self._send(
                CREATE_PARTITIONS, values, lambda f: self._on_create_partitions(count, f)
            )

    def _admin_answer(self, what: str, error: ErrorCode) -> None:
        flight, self.admin.flight = self.admin.flight, None
        self._note(f"admin: {what} -> {error.name}")
        if error in UNKNOWN_OUTCOME and flight is not None:
            self._admin_outcome_unknown(flight)

    def _admin_outcome_unknown(self, flight: InFlight) -> None:
        """A CreateTopics or DeleteTopics that may or may not have happened: until the next
        answer says, the topic may exist or not (a CreatePartitions only keeps its floor)."""
        if flight.api_key in (CREATE_TOPICS[0], DELETE_TOPICS[0]):
            self.admin.state = "unknown"

    def _on_create_topic(self, partitions: int, flight: InFlight) -> None:
        error = ErrorCode(self.node.answer(flight).topics[0].error_code)
        self._admin_answer("CreateTopics", error)
        if error is ErrorCode.NONE:
            self.admin.state, self.admin.partitions = "present", partitions
        elif error is ErrorCode.TOPIC_ALREADY_EXISTS:
            if self.admin.state == "absent":
                raise Violation(f"CreateTopics {ADMIN_TOPIC}: exists, but it was deleted")
            # Not "present": a DeleteTopics cut midway leaves the entry without some logs.
        elif error not in UNKNOWN_OUTCOME:
            raise Violation(f"CreateTopics {ADMIN_TOPIC}: unexpected answer {error.name}")

    def _on_delete_topic(self, flight: InFlight) -> None:
        error = ErrorCode(self.node.answer(flight).responses[0].error_code)
        self._admin_answer("DeleteTopics", error)
        admin = self.admin
        if error is ErrorCode.NONE:
            admin.state, admin.partitions = "absent", 0
            admin.deleted |= admin.doomed
            admin.doomed = set()
        elif error is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            if admin.state == "present":
                raise Violation(f"DeleteTopics {ADMIN_TOPIC}: unknown, but it was created")
            admin.state = "absent"
        elif error not in UNKNOWN_OUTCOME:
            raise Violation(f"DeleteTopics {ADMIN_TOPIC}: unexpected answer {error.name}")

    def _on_create_partitions(self, count: int, flight: InFlight) -> None:
        error = ErrorCode(self.node.answer(flight).results[0].error_code)
        self._admin_answer(f"CreatePartitions count={count}", error)
        if error is ErrorCode.NONE:
            self.admin.partitions = count
        elif error not in (
            ErrorCode.INVALID_PARTITIONS,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            *UNKNOWN_OUTCOME,
        ):
            raise Violation(f"CreatePartitions {ADMIN_TOPIC}: unexpected answer {error.name}")

    def _produce_admin_topic(self) -> None:
        admin, producer = self.admin, self.admin.producer
        if producer.flight is not None:
            self._note(f"{producer.name}: still waiting for its request")
            return
        assert self.node.broker is not None
        topic = self.node.broker.topics.get(ADMIN_TOPIC)  # what a Metadata request would say
        if topic is None and self.rng.random() < 0.8:
            self._note(f"{producer.name}: no topic {ADMIN_TOPIC} in Metadata")
            return
        partitions = topic.partitions if topic is not None else 1
        pending = producer.new_batch(
            self.rng.randrange(partitions), self.clock.now_ms(), self.rng.randint(1, 3), -1
        )
        generation = admin.generation
        self._note(f"{producer.name}: produce {ADMIN_TOPIC}-{pending.partition}")
        producer.flight = self._send(
            prod.PRODUCE,
            prod.produce_values(ADMIN_TOPIC, pending),
            lambda f: self._on_produce_admin_topic(pending, generation, f),
        )

    def _on_produce_admin_topic(
        self, pending: prod.Pending, generation: int, flight: InFlight
    ) -> None:
        admin = self.admin
        admin.producer.flight = None
        part = self.node.answer(flight).responses[0].partition_responses[0]
        error, base = ErrorCode(part.error_code), int(part.base_offset)
        self._note(f"a0: {ADMIN_TOPIC}-{pending.partition} -> {error.name} at {base}")
        if error is not ErrorCode.NONE or generation != admin.generation:
            return  # not stored, or a DeleteTopics was sent meanwhile: nothing to rely on
        model = admin.models.setdefault(pending.partition, PartitionModel())
        model.acked[base] = stamped_body(pending.batch)

    def _admin_restarted(self) -> None:
        if self.admin.flight is not None:
            self._admin_outcome_unknown(self.admin.flight)
        self.admin.flight = None
        for model in self.admin.models.values():
            # Retention's moves of the start are not promised durable (no DeleteRecords here).
            model.seen_start = model.start_floor
        self.admin.producer.flight = None
        self.admin.producer.pending = None

    def _check_admin_topic(self) -> None:
        admin = self.admin
        assert self.node.broker is not None
        self._check_no_deleted_batches()
        topic = self.node.broker.topics.get(ADMIN_TOPIC)
        deleting = admin.flight is not None and admin.flight.api_key == DELETE_TOPICS[0]
        if topic is None:
            if admin.state == "present" and not deleting:
                raise Violation(f"topic {ADMIN_TOPIC}, created, is gone")
            return
        if admin.state == "absent" and not self._admin_creating():
            raise Violation(f"topic {ADMIN_TOPIC}, deleted, is back")
        if admin.state == "present" and not deleting and topic.partitions < admin.partitions:
            raise Violation(
                f"topic {ADMIN_TOPIC} has {topic.partitions} partitions, "
                f"{admin.partitions} were answered"
            )
        for partition in range(topic.partitions):
            plog = self.node.broker.partition(ADMIN_TOPIC, partition)
            if plog is None and admin.state == "unknown":
                # A DeleteTopics that failed midway: logs go first, the topic's entry last
                # (Broker.delete_topic); the client deletes again, a restart recreates them.
                continue
            if plog is None:
                raise Violation(f"partition {ADMIN_TOPIC}-{partition} is missing")
            model = admin.models.get(partition, PartitionModel())
            name = f"{ADMIN_TOPIC}-{partition}"
            check_partition(name, plog, model)

    def _check_no_deleted_batches(self) -> None:
        """In every log of the topic's name, listed or left over (a CreatePartitions cut
        midway leaves logs no client sees until the next one)."""
        assert self.node.logs is not None
        for tp in self.node.logs.partitions():
            plog = self.node.logs.get(tp.topic, tp.partition)
            if tp.topic != ADMIN_TOPIC or plog is None:
                continue
            _, batches = stored_batches(plog)
            back = [b.base for b in batches if b.body in self.admin.deleted]
            if back:
                raise Violation(f"{plog.name}: batches of a deleted topic came back at {back}")

    def _admin_creating(self) -> bool:
        flight = self.admin.flight
        return flight is not None and flight.api_key == CREATE_TOPICS[0]
