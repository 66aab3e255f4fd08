"""The transactional producers' steps of the simulation (a mixin of :class:`Simulation`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal.protocol import ErrorCode
from shoal.records import read_header
from tests.simulation import producers as prod
from tests.simulation import txns as tx
from tests.simulation.node import InFlight
from tests.simulation.topic import PARTITIONS, TOPIC

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object


class TxnSteps(_Base):
    def _transact(self) -> None:
        producer = self.rng.choice(self.txn_producers)
        if producer.flight is not None:
            self._note(f"{producer.name}: still waiting for its request")
            return
        if producer.state == "init":
            self._note(f"{producer.name}: InitProducerId {producer.transactional_id}")
            producer.flight = self._send(
                prod.INIT_PRODUCER_ID,
                producer.init_values(),
                lambda f: self._txn_answer(producer, "init", f),
            )
            return
        if producer.state == "ending":
            self._end_txn(producer)
            return
        if producer.state == "ready":
            producer.txn = self.txns.begin(producer.producer_id, producer.epoch)
            producer.state = "open"
            self._note(f"{producer.name}: begin transaction {producer.txn.number}")
        choice = self.rng.random()
        if producer.pending is not None:
            self._txn_produce(producer)
        elif (choice < 0.25 or not producer.added) and len(producer.added) < PARTITIONS:
            partition = self.rng.choice([p for p in range(PARTITIONS) if p not in producer.added])
            self._note(f"{producer.name}: AddPartitionsToTxn p{partition}")
            producer.flight = self._send(
                tx.ADD_PARTITIONS,
                producer.add_values(TOPIC, partition),
                lambda f: self._txn_answer(producer, "add", f, partition),
            )
        elif choice < 0.65 and producer.added:
            self._txn_produce(producer)
        elif choice < 0.8 and not producer.offsets_added:
            self._note(f"{producer.name}: AddOffsetsToTxn {tx.TXN_GROUP}")
            producer.flight = self._send(
                tx.ADD_OFFSETS,
                tx.add_offsets_values(producer),
                lambda f: self._txn_answer(producer, "add offsets", f),
            )
        elif choice < 0.8:
            assert producer.txn is not None
            offsets = {p: self.rng.randint(0, 500) for p in range(PARTITIONS)}
            for p, value in offsets.items():
                producer.txn.offsets.setdefault(p, set()).add(value)
            self._note(f"{producer.name}: TxnOffsetCommit {offsets}")
            producer.flight = self._send(
                tx.TXN_OFFSET_COMMIT,
                tx.txn_offset_commit_values(producer, TOPIC, offsets),
                lambda f: self._txn_offsets_answer(producer, offsets, f),
            )
        else:
            assert producer.txn is not None
            producer.commit = self.rng.random() < 0.7
            if producer.commit:
                self.txns.commit_sent(producer.txn)
            producer.state = "ending"
            self._end_txn(producer)

    def _end_txn(self, producer: tx.TxnProducer) -> None:
        assert producer.txn is not None
        verb = "commit" if producer.commit else "abort"
        self._note(f"{producer.name}: EndTxn {verb} transaction {producer.txn.number}")
        producer.flight = self._send(
            tx.END_TXN, producer.end_values(), lambda f: self._txn_answer(producer, "end", f)
        )

    def _txn_produce(self, producer: tx.TxnProducer) -> None:
        assert producer.txn is not None
        if producer.pending is None:
            partition = self.rng.choice(sorted(producer.added))
            producer.pending = producer.new_batch(
                partition, self.clock.now_ms(), self.rng.randint(1, 4)
            )
        pending = producer.pending
        header = read_header(pending.batch)
        key = (header.producer_id, header.producer_epoch, pending.partition, header.base_sequence)
        self.txns.batches[key] = producer.txn
        self._note(
            f"{producer.name}: produce p{pending.partition} in transaction "
            f"{producer.txn.number} seq={header.base_sequence} n={header.record_count}"
        )
        values = prod.produce_values(TOPIC, pending)
        values["transactional_id"] = producer.transactional_id
        producer.flight = self._send(
            prod.PRODUCE, values, lambda f: self._txn_produced(producer, pending, f)
        )

    def _txn_produced(self, producer: tx.TxnProducer, pending: prod.Pending, f: InFlight) -> None:
        producer.flight = None
        part = self.node.answer(f).responses[0].partition_responses[0]
        error = ErrorCode(part.error_code)
        self._note(f"{producer.name}: p{pending.partition} -> {error.name} at {part.base_offset}")
        if error is ErrorCode.NONE:
            self._acked(pending, int(part.base_offset))
        if producer.pending is pending:
            producer.on_produced(error, pending)

    def _txn_offsets_answer(
        self, producer: tx.TxnProducer, offsets: dict[int, int], flight: InFlight
    ) -> None:
        producer.flight = None
        answer = self.node.answer(flight)
        errors = {
            int(p.partition_index): ErrorCode(p.error_code) for p in answer.topics[0].partitions
        }
        if producer.txn is not None:
            for partition, error in errors.items():
                if error is ErrorCode.NONE:
                    producer.txn.acked_offsets.setdefault(partition, set()).add(offsets[partition])
        if set(errors.values()) - {ErrorCode.NONE} - tx.RETRY:
            producer.fenced()
        self._note(f"{producer.name}: offsets -> {sorted((p, e.name) for p, e in errors.items())}")

    def _txn_answer(
        self, producer: tx.TxnProducer, what: str, flight: InFlight, partition: int = -1
    ) -> None:
        producer.flight = None
        answer = self.node.answer(flight)
        if what == "init":
            outcome = producer.on_init(answer)
        elif what == "add":
            outcome = producer.on_add(answer, partition)
        elif what == "add offsets":
            error = ErrorCode(answer.error_code)
            if error is ErrorCode.NONE:
                producer.offsets_added = True
            elif error not in tx.RETRY:
                producer.fenced()
            outcome = error.name

        else:
            outcome = producer.on_end(answer)
        self._note(f"{producer.name}: {what} -> {outcome}")
