"""DeleteRecords and ListOffsets steps of the simulation (a mixin of :class:`Simulation`).

DeleteRecords moves a partition's log start forward while producers append to it: to a random
offset up to the high watermark (the log end on a single node), to the high watermark itself
(-1), below the current start (a no-op) or past the log end (OFFSET_OUT_OF_RANGE). A start
answered to a client is the partition's floor: shoal saves it durably before answering
(``PartitionLog.delete_records``), so no crash or power loss may bring the start back below it.
ListOffsets earliest must answer the log start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from shoal.protocol import ApiKey, ErrorCode
from tests.simulation.model import Violation
from tests.simulation.node import InFlight
from tests.simulation.topic import PARTITIONS, TOPIC

if TYPE_CHECKING:
    from tests.simulation.sim import Simulation

    _Base = Simulation
else:
    _Base = object

DELETE_RECORDS: Final = (int(ApiKey.DELETE_RECORDS), 2)
LIST_OFFSETS: Final = (int(ApiKey.LIST_OFFSETS), 7)
HIGH_WATERMARK: Final = -1
EARLIEST: Final = -2
DELETE_TIMEOUT_MS: Final = 30_000
PAST_END_MAX: Final = 5
"""How far past the log end an out-of-range DeleteRecords aims (offsets)."""

UNKNOWN_OUTCOME: Final = frozenset({ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.REQUEST_TIMED_OUT})
"""DeleteRecords answers after which the start may or may not have moved (a failed write of
the checkpoint leaves the new start in memory only)."""


class DeleteSteps(_Base):
    def _delete_records(self) -> None:
        partition = self.rng.randrange(PARTITIONS)
        plog = self._plog(partition)
        start, end = plog.log_start_offset, plog.log_end_offset
        kind = self.rng.choice(("inside", "inside", "high watermark", "below start", "past end"))
        if kind == "inside":
            target = self.rng.randint(start, end)
        elif kind == "high watermark":
            target = HIGH_WATERMARK
        elif kind == "below start":
            target = self.rng.randint(0, start)
        else:
            target = end + self.rng.randint(1, PAST_END_MAX)
        self._note(f"DeleteRecords p{partition} before {target} (log [{start}, {end}))")
        values = {
            "topics": [
                {"name": TOPIC, "partitions": [{"partition_index": partition, "offset": target}]}
            ],
            "timeout": DELETE_TIMEOUT_MS,
        }
        self._send(
            DELETE_RECORDS,
            values,
            lambda f: self._on_delete_records(partition, target, end, f),
        )

    def _on_delete_records(self, partition: int, target: int, end: int, flight: InFlight) -> None:
        answer = self.node.answer(flight)
        part = answer.topics[0].partitions[0]
        error = ErrorCode(part.error_code)
        low = int(part.low_watermark)
        self._note(f"DeleteRecords p{partition} before {target} -> {error.name} start {low}")
        model = self.models[partition]
        if error is ErrorCode.NONE:
            if low < target:
                raise Violation(f"DeleteRecords p{partition} before {target} answered start {low}")
            model.start_floor = max(model.start_floor, low)
        elif error is ErrorCode.OFFSET_OUT_OF_RANGE:
            if target <= end:
                raise Violation(
                    f"DeleteRecords p{partition} before {target}: OFFSET_OUT_OF_RANGE with the "
                    f"log end at {end}"
                )
        elif error not in UNKNOWN_OUTCOME:
            raise Violation(f"DeleteRecords p{partition}: unexpected answer {error.name}")

    def _list_earliest(self) -> None:
        partition = self.rng.randrange(PARTITIONS)
        start = self._plog(partition).log_start_offset
        self._note(f"ListOffsets earliest p{partition}")
        values: dict[str, Any] = {
            "replica_id": -1,
            "isolation_level": 0,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        {
                            "partition_index": partition,
                            "current_leader_epoch": -1,
                            "timestamp": EARLIEST,
                        }
                    ],
                }
            ],
        }
        self._send(LIST_OFFSETS, values, lambda f: self._on_list_earliest(partition, start, f))

    def _on_list_earliest(self, partition: int, start: int, flight: InFlight) -> None:
        part = self.node.answer(flight).topics[0].partitions[0]
        error = ErrorCode(part.error_code)
        offset = int(part.offset)
        now = self._plog(partition).log_start_offset
        self._note(f"ListOffsets earliest p{partition} -> {error.name} {offset}")
        if error is not ErrorCode.NONE:
            raise Violation(f"ListOffsets earliest p{partition}: unexpected answer {error.name}")
        # The start may move forward between the request and its answer, never back.
        if not start <= offset <= now:
            raise Violation(
                f"ListOffsets earliest p{partition} answered {offset}, the log start was {start} "
                f"then {now}"
            )
