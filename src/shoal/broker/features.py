"""The feature flags shoal reports (KIP-584): what ApiVersions lists as supported and finalized
features, and what UpdateFeatures may ask for.

Kafka's features name levels of behaviour a cluster has switched on; ``kafka-features describe``
prints them and the Java clients read some (e.g. ``transaction.version`` decides the
transaction protocol a producer uses). shoal reports only what it does, each at one level it
cannot leave, so it supports exactly its finalized level:

- ``metadata.version`` 33 (4.4-IV2): the metadata level of Apache Kafka 4.4, whose protocol
  shoal serves. Its tools print the level by name, so it must be one Kafka knows.
- ``group.version`` 1 (KIP-848 consumer groups), only while the broker serves
  ConsumerGroupHeartbeat.

- ``transaction.version`` 2 (transactions V2, KIP-890 part 2), supported from 0 as Kafka 4.4
  reports it: 4.x clients then end each transaction with EndTxn v5 (an epoch bump per
  transaction) and let Produce v12+ and TxnOffsetCommit v5+ add partitions implicitly; older
  clients (librdkafka) keep the classic protocol, which the same coordinator serves. The
  ``transaction_version`` setting lowers the finalized level (as ``kafka-features downgrade``
  would on Kafka, whose supported range stays 0-2): at 1, or 0 (then not finalized: left out
  of the finalized features, as Kafka leaves out a level 0), 4.x clients keep the classic
  protocol too, and Produce v12+ and TxnOffsetCommit v5+ add no partition.

Features shoal does not have are left out, which clients read as level 0: ``share.version``
(when share groups are not served, share_version 0),
``streams.version``, ``eligible.leader.replicas.version`` (no replicas to elect among) and
``kraft.version`` (no Raft quorum).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from shoal.protocol import ApiKey, ApiVersionRange

METADATA_VERSION: Final = "metadata.version"
METADATA_VERSION_LEVEL: Final = 33
"""Kafka 4.4's latest production metadata.version, 4.4-IV2."""
GROUP_VERSION: Final = "group.version"
SHARE_VERSION: Final = "share.version"
"""KIP-932 share groups (issue 16): level 1 (share groups). Kafka 4.4 finalizes 2, which adds
share-group dead-letter queues (KIP-1191) that shoal does not have."""
FINALIZED_FEATURES_EPOCH: Final = 1
"""Clients keep the finalized features of the highest epoch they have seen (-1 meaning
unknown), so the epoch must be at least 0; shoal's features never change while it runs."""


TRANSACTION_VERSION: Final = "transaction.version"
TRANSACTION_VERSION_LEVEL: Final = 2
"""Transactions V2 (issue 14): EndTxn v5, implicit adds by Produce v12+ and TxnOffsetCommit
v5+; the default of the ``transaction_version`` setting. Levels 0 and 1 keep every client on
the classic protocol (Kafka's level 1 only changes its log's format, which shoal's already
has at every level)."""
TRANSACTION_VERSION_LEVELS: Final = range(TRANSACTION_VERSION_LEVEL + 1)


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    level: int
    """The finalized level; 0 means not finalized, and ApiVersions leaves it out of the
    finalized features, as Kafka does (a feature set to 0 is removed from its metadata)."""
    min_supported: int | None = None
    """The lowest supported level when it is below ``level`` (None: only ``level``)."""
    max_supported: int | None = None
    """The highest supported level when it is above ``level`` (None: ``level``)."""

    @property
    def min_level(self) -> int:
        return self.level if self.min_supported is None else self.min_supported

    @property
    def max_level(self) -> int:
        return self.level if self.max_supported is None else self.max_supported


def broker_features(
    apis: Mapping[int, ApiVersionRange], transaction_version: int = TRANSACTION_VERSION_LEVEL
) -> tuple[Feature, ...]:
    """The features of a broker serving ``apis`` at ``transaction_version``, by name."""
    features = [Feature(METADATA_VERSION, METADATA_VERSION_LEVEL)]
    if ApiKey.CONSUMER_GROUP_HEARTBEAT in apis:
        features.append(Feature(GROUP_VERSION, 1))
    if ApiKey.SHARE_GROUP_HEARTBEAT in apis:  # share groups (issue 16)
        features.append(Feature(SHARE_VERSION, 1))
    # Transactions V2 (issue 14), or V1 or the classic protocol when set lower: the supported
    # range stays Kafka 4.4's (the broker can do every level), only the finalized one moves.
    features.append(
        Feature(
            TRANSACTION_VERSION,
            transaction_version,
            min_supported=0,
            max_supported=TRANSACTION_VERSION_LEVEL,
        )
    )
    return tuple(sorted(features, key=lambda f: f.name))


def transactions_v2(transaction_version: int) -> bool:
    """Whether a broker at ``transaction_version`` serves transactions V2 (the implicit adds
    of Produce v12+ and TxnOffsetCommit v5+ follow the advertised feature, as Kafka's follow
    its finalized one)."""
    return transaction_version >= 2
