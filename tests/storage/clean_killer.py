"""The process that test_cleaner_sigkill.py kills: cleans a log and SIGKILLs itself at the N-th
file-system call (0: never; it then prints how many calls the clean made).

Run as ``python tests/storage/clean_killer.py DIR N``.
"""

from __future__ import annotations

import os
import signal
import sys

from shoal.storage import File, LogManager, OsFileSystem
from tests.storage.cleaning import NOW, run_clean
from tests.storage.test_cleaner_crash import CONFIG


class KillingFileSystem(OsFileSystem):
    """The real file system, which SIGKILLs the process at its ``kill_at``-th call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.kill_at = 0

    def count(self) -> None:
        self.calls += 1
        if self.kill_at and self.calls >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def open(self, path: str, *, create: bool = False) -> File:
        self.count()
        return super().open(path, create=create)

    def remove(self, path: str) -> None:
        self.count()
        super().remove(path)

    def rename(self, src: str, dst: str) -> None:
        self.count()
        super().rename(src, dst)

    def fsync_dir(self, path: str) -> None:
        self.count()
        super().fsync_dir(path)


def main() -> None:
    directory, kill_at = sys.argv[1], int(sys.argv[2])
    fs = KillingFileSystem()
    manager = LogManager.open(directory, fs=fs, default_config=CONFIG)
    plog = manager.get("t", 0)
    assert plog is not None
    fs.calls, fs.kill_at = 0, kill_at
    run_clean(plog, NOW)
    print(fs.calls, flush=True)
    manager.close()


if __name__ == "__main__":
    main()
