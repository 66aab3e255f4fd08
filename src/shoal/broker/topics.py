"""Topic metadata: names, stable ids, partition counts and config overrides.

Kept in ``topics.json`` at the root of the data directory, replaced atomically on every change
(changes are rare: admin operations). Topic ids are random UUIDs chosen at creation and never
change: clients (librdkafka, Fetch v13+) key partitions by them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Re-exported: topics and their storage settings used to live together here.
from shoal.broker.topic_configs import log_config_for as log_config_for
from shoal.storage.documents import DocumentDamaged, read_document, write_document
from shoal.storage.fs import FileSystem

TOPICS_FILE: Final = "topics.json"
_VERSION: Final = 1


class TopicsDamaged(DocumentDamaged):
    """topics.json cannot be read; the message says what to do."""


MAX_TOPIC_NAME_LENGTH: Final = 249
"""Kafka's limit: a partition directory name must fit in 255 bytes with its suffix."""
_LEGAL_NAME: Final = re.compile(r"^[a-zA-Z0-9._-]+$")


class TopicError(Exception):
    """A topic operation that cannot be done; carries the Kafka error code to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def check_topic_name(name: str) -> None:
    """Raise INVALID_TOPIC_EXCEPTION (17) for a name Kafka would refuse."""
    if not name or name in (".", ".."):
        raise TopicError(17, f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise TopicError(17, f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters")
    if not _LEGAL_NAME.match(name):
        raise TopicError(
            17,
            f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_', '-'",
        )


@dataclass
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    """Overrides of the broker defaults (Kafka topic config names and string values)."""
    internal: bool = False
    """One of the broker's own topics (``__consumer_offsets``), shown to clients as Kafka shows
    its internal topics; never a topic a client created, whatever its name."""

    @property
    def is_internal(self) -> bool:
        return self.internal


class TopicStore:
    """``check_writable`` raises when the data directory may not be written (it failed: see
    :class:`shoal.storage.log.DirectoryHealth`); every change asks it first, so a failed
    directory refuses topic changes before anything moves, as it refuses appends."""

    def __init__(
        self, fs: FileSystem, data_dir: str, check_writable: Callable[[], None] | None = None
    ) -> None:
        self._fs = fs
        self._check_writable = check_writable
        self._path = os.path.join(data_dir, TOPICS_FILE)
        self._topics: dict[str, Topic] = {}
        self._by_id: dict[uuid.UUID, Topic] = {}
        try:
            doc = read_document(fs, self._path, version=_VERSION)
            if doc is not None:
                self._load(doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TopicsDamaged(
                f"{self._path} cannot be used ({exc}); restore it from a backup (without it the "
                "broker does not know its topics, though their partition directories remain)"
            ) from exc

    def _load(self, doc: Mapping[str, Any]) -> None:
        for entry in doc.get("topics", []):
            topic = Topic(
                name=entry["name"],
                topic_id=uuid.UUID(entry["id"]),
                partitions=int(entry["partitions"]),
                configs={str(k): str(v) for k, v in entry.get("configs", {}).items()},
                internal=bool(entry.get("internal", False)),
            )
            self._topics[topic.name] = topic
            self._by_id[topic.topic_id] = topic

    def _save(self) -> None:
        if self._check_writable is not None:
            self._check_writable()
        body = {
            "topics": [
                {
                    "name": t.name,
                    "id": str(t.topic_id),
                    "partitions": t.partitions,
                    "configs": t.configs,
                    **({"internal": True} if t.internal else {}),
                }
                for t in sorted(self._topics.values(), key=lambda t: t.name)
            ],
        }
        write_document(self._fs, self._path, body, version=_VERSION)

    def __iter__(self) -> Iterator[Topic]:
        return iter(list(self._topics.values()))

    def __len__(self) -> int:
        return len(self._topics)

    def get(self, name: str) -> Topic | None:
        return self._topics.get(name)

    def by_id(self, topic_id: uuid.UUID) -> Topic | None:
        return self._by_id.get(topic_id)

    # Each change is saved before it counts: if the save fails, memory is put back as it was,
    # so what clients see never runs ahead of what a restart would load.

    def add(
        self, name: str, partitions: int, configs: Mapping[str, str], *, internal: bool = False
    ) -> Topic:
        topic = Topic(name, uuid.uuid4(), partitions, dict(configs), internal=internal)
        self._topics[name] = topic
        self._by_id[topic.topic_id] = topic
        try:
            self._save()
        except BaseException:
            del self._topics[name]
            del self._by_id[topic.topic_id]
            raise
        return topic

    def remove(self, name: str) -> Topic | None:
        topic = self._topics.pop(name, None)
        if topic is not None:
            self._by_id.pop(topic.topic_id, None)
            try:
                self._save()
            except BaseException:
                self._topics[name] = topic
                self._by_id[topic.topic_id] = topic
                raise
        return topic

    def set_partitions(self, name: str, partitions: int) -> None:
        topic = self._topics[name]
        before = topic.partitions
        topic.partitions = partitions
        try:
            self._save()
        except BaseException:
            topic.partitions = before
            raise

    def set_configs(self, name: str, configs: Mapping[str, str]) -> None:
        topic = self._topics[name]
        before = topic.configs
        topic.configs = dict(configs)
        try:
            self._save()
        except BaseException:
            topic.configs = before
            raise
