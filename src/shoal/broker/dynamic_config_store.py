"""The dynamic broker configs (Kafka's KIP-226 levels set at runtime), kept in the data directory.

``broker-configs.json`` holds the cluster-wide level and each broker id's level:

    {"version": 1, "cluster": {"min.insync.replicas": "1"}, "brokers": {"1": {...}}}

It is replaced atomically on every change (temporary file, fsync, rename, directory fsync), so a
crash leaves the old or the new set, never a mix. A missing file is a new cluster: the cluster
level starts from ``seed``. A damaged or invalid file stops the broker with a message, rather
than starting with configs nobody chose.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Final

from shoal.storage.documents import DocumentDamaged, read_document, write_document
from shoal.storage.fs import FileSystem

BROKER_CONFIGS_FILE: Final = "broker-configs.json"
_VERSION: Final = 1

Validate = Callable[[Mapping[str, str], bool], Mapping[str, str]]
"""Checks one level (``True`` for the cluster-wide one); raises ValueError when invalid."""


class DynamicConfigsDamaged(DocumentDamaged):
    """broker-configs.json cannot be read; the message says what to do."""


class DynamicConfigStore:
    def __init__(
        self, fs: FileSystem, data_dir: str, seed: Mapping[str, str], validate: Validate
    ) -> None:
        self._fs = fs
        self._path = os.path.join(data_dir, BROKER_CONFIGS_FILE)
        self._cluster: dict[str, str] = dict(seed)
        self._brokers: dict[str, dict[str, str]] = {}
        if fs.exists(self._path):
            self._load(validate)

    def _load(self, validate: Validate) -> None:
        try:
            doc = read_document(self._fs, self._path, version=_VERSION) or {}
            cluster = _strings(doc["cluster"])
            brokers = {str(node): _strings(level) for node, level in doc["brokers"].items()}
            self._cluster = dict(validate(cluster, True))
            self._brokers = {node: dict(validate(lvl, False)) for node, lvl in brokers.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DynamicConfigsDamaged(
                f"{self._path} cannot be used ({exc}); fix it, or remove it to go back to the "
                "static and default broker configs"
            ) from exc

    @property
    def cluster(self) -> Mapping[str, str]:
        return self._cluster

    def broker(self, node_id: int) -> Mapping[str, str]:
        return self._brokers.get(str(node_id), {})

    def replace(self, node_id: int | None, configs: Mapping[str, str]) -> None:
        """Make ``configs`` the whole level: cluster-wide (``None``) or broker ``node_id``'s.

        Saved before it counts: if the save fails, memory is put back as it was.
        """
        cluster, brokers = self._cluster, dict(self._brokers)
        if node_id is None:
            self._cluster = dict(configs)
        elif configs:
            self._brokers[str(node_id)] = dict(configs)
        else:
            self._brokers.pop(str(node_id), None)
        try:
            self._save()
        except BaseException:
            self._cluster, self._brokers = cluster, brokers
            raise

    def _save(self) -> None:
        body = {"cluster": self._cluster, "brokers": self._brokers}
        write_document(self._fs, self._path, body, version=_VERSION, sort_keys=True)


def _strings(level: object) -> dict[str, str]:
    if not isinstance(level, dict) or not all(isinstance(v, str) for v in level.values()):
        raise ValueError("a level must map config names to string values")
    return {str(name): value for name, value in level.items()}
