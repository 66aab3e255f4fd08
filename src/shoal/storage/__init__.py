"""The partition log: segments, indexes, append, read, recovery, retention, group-commit flushing.

Knows nothing of Kafka protocol messages: it stores and returns record batches as bytes.
"""

from shoal.storage.config import FlushPolicy, LogConfig
from shoal.storage.errors import (
    CorruptLogError,
    DiskFullError,
    LogClosedError,
    LogDirectoryFailedError,
    OffsetOutOfRangeError,
    ReadWouldWait,
    StorageError,
)
from shoal.storage.fs import File, FileSystem, OsFileSystem
from shoal.storage.log import AppendInfo, PartitionLog, ReadResult
from shoal.storage.manager import LogId, LogManager

__all__ = [
    "AppendInfo",
    "CorruptLogError",
    "DiskFullError",
    "File",
    "FileSystem",
    "FlushPolicy",
    "LogClosedError",
    "LogConfig",
    "LogDirectoryFailedError",
    "LogId",
    "LogManager",
    "OffsetOutOfRangeError",
    "OsFileSystem",
    "PartitionLog",
    "ReadResult",
    "ReadWouldWait",
    "StorageError",
]
