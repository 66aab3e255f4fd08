"""The partition log: segments, indexes, append, read, recovery, retention, group-commit flushing."""
