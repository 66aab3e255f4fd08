"""A broker stand-in for test_cleaner_orphan.py: opens the log in ``argv[1]``, starts the
cleaner in its own process with the pickled step hook ``argv[2]`` (hex), says so, and
waits to be killed.

``argv[3] == "no-pdeathsig"`` starts the cleaner's process as on a system without Linux's
``PR_SET_PDEATHSIG`` (macOS): the option number it passes to ``prctl`` is one no kernel
knows, so only the process's own check of its parent is left to end it.
"""

from __future__ import annotations

import pickle
import sys
import time

from shoal.storage import LogManager, cleaner_process
from shoal.storage.cleaner_thread import CleanerSettings
from shoal.testing.cleaner_steps import cleaner_step_hook
from tests.storage.test_cleaner_process import COMPACT


def main() -> None:
    directory, hook, mode = sys.argv[1], pickle.loads(bytes.fromhex(sys.argv[2])), sys.argv[3]
    if mode == "no-pdeathsig":
        cleaner_process._ENTRY = (  # type: ignore[misc]  # a test stands in for another OS
            "import sys; from shoal.storage import cleaner_process as c; "
            "c._PR_SET_PDEATHSIG = -1; sys.exit(c.main(sys.argv[1:]))"
        )
    manager = LogManager.open(directory, default_config=COMPACT)  # the config is not stored
    with cleaner_step_hook(hook):
        manager.start_cleaner(CleanerSettings(backoff_ms=50), separate_process=True)
        print("started", flush=True)
        time.sleep(600)  # killed by the test long before


if __name__ == "__main__":
    main()
