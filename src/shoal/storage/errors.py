"""Errors of the storage layer. Each names the Kafka error code the broker answers with."""

from __future__ import annotations

from typing import ClassVar


class ReadWouldWait(Exception):
    """A read asked for cached bytes only (``cached_only=True``) found some on the disk alone.

    Not a :class:`StorageError`: nothing is wrong, the caller reads again where waiting for
    the disk is allowed (a worker thread, not the event loop).
    """


class StorageError(Exception):
    """Root of every error from :mod:`shoal.storage`."""

    kafka_error_code: ClassVar[int] = 56
    kafka_error_name: ClassVar[str] = "KAFKA_STORAGE_ERROR"


class LogDirectoryFailedError(StorageError):
    """The log directory had an I/O failure (fsync EIO, write EIO) and is read-only from now on.

    A failed fsync leaves the kernel's view of the file unknown: retrying and trusting it is how
    data is silently lost (the 2018 "fsyncgate"), so the directory stays failed until restart.
    """


class DiskFullError(StorageError):
    """A write failed for lack of space (ENOSPC/EDQUOT). Nothing was appended; retry later."""


class CorruptLogError(StorageError):
    """Data below the recovery checkpoint (already fsynced and acknowledged) is damaged.

    The partition is refused and its files are kept untouched for an operator to inspect: cutting
    fsynced data would silently lose acknowledged records.
    """


class OffsetOutOfRangeError(StorageError):
    kafka_error_code = 1
    kafka_error_name = "OFFSET_OUT_OF_RANGE"


class LogClosedError(StorageError):
    """The log was closed (or deleted) while a caller still used it."""

    kafka_error_code = 6
    kafka_error_name = "NOT_LEADER_OR_FOLLOWER"
