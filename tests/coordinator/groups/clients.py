"""Helpers for group tests with real clients: a child consumer process, polling until."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

CHILD = Path(__file__).with_name("consumer_child.py")


def wait_until(condition: Callable[[], bool], timeout_s: float, step: Callable[[], None]) -> bool:
    """Run ``step`` until ``condition`` holds or ``timeout_s`` passes; True if it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        step()
        if condition():
            return True
    return condition()


class ChildConsumer:
    """A consumer_child.py process; its reports are collected by a reader thread.

    ``script`` and ``extra`` run another child with the same report format instead
    (python_client_child.py, which takes the client's name in ``extra``).
    """

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        config: dict[str, Any],
        *,
        script: Path = CHILD,
        extra: dict[str, Any] | None = None,
    ) -> None:
        args = {"bootstrap": bootstrap, "group": group, "topic": topic, "config": config}
        args.update(extra or {})
        self.process = subprocess.Popen(
            [sys.executable, str(script), json.dumps(args)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[3],
        )
        self.assigned: list[int] = []
        self.records: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            report = json.loads(line)
            with self._lock:
                if "assigned" in report:
                    self.assigned = report["assigned"]
                else:
                    self.records.append(report["record"])

    def snapshot(self) -> tuple[list[int], list[str]]:
        with self._lock:
            return list(self.assigned), list(self.records)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def check_commits_never_go_back(admin: Any, group: str, high: dict[int, int], seed: int) -> None:
    """Read ``group``'s committed offsets and assert none is below the highest seen before
    (``high``, partition -> offset, updated here): a commit from a member of a past
    generation or epoch must have been refused. For the churn tests of both group protocols."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = ConsumerGroupTopicPartitions(group)
    offsets = admin.list_consumer_group_offsets([request])[group].result(30)
    for tp in offsets.topic_partitions:
        if tp.offset < 0:
            continue
        assert tp.offset >= high.get(tp.partition, 0), (
            f"seed {seed}: the committed offset of partition {tp.partition} went back "
            f"from {high[tp.partition]} to {tp.offset}"
        )
        high[tp.partition] = tp.offset


EARLIEST: Final[Mapping[str, str]] = {"share.auto.offset.reset": "earliest"}
"""A share group's configs that make it read a topic from its start."""


def set_group_configs(admin: AdminClient, group: str, configs: Mapping[str, str]) -> None:
    """Set ``configs`` on ``group`` (IncrementalAlterConfigs SET), waiting for the answer."""
    change = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in configs.items()
        ],
    )
    admin.incremental_alter_configs([change])[change].result(30)


def create_share_queue(
    bootstrap: str,
    topic: str,
    group: str,
    configs: Mapping[str, str] = EARLIEST,
    *,
    partitions: int = 1,
) -> None:
    """``topic`` (one partition unless told) and the share group ``group`` with ``configs``
    (by default reading from the topic's start)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    set_group_configs(admin, group, configs)
