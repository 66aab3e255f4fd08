"""Group consumers in child processes (consumer_child.py), so that a test can SIGKILL them.

Each child streams its reads, resumes and acknowledged commits into the parent's history.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Final

from tests.reliability.consumer_child import parse_event
from tests.reliability.history import History
from tests.support.broker import REPO

STOP_TIMEOUT_S: Final = 30.0
SESSION_TIMEOUT_MS: Final = 3_000
"""Short, so the group notices a killed member (which never says goodbye) within the quick
mode's budget; the broker's group.min.session.timeout.ms must be lowered to allow it."""


@dataclass
class ConsumerFleet:
    bootstrap: str
    topic: str
    history: History
    alive: list[subprocess.Popen[str]] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)
    started: int = 0

    def join(self) -> None:
        name = f"p{self.started}"
        self.started += 1
        arguments = [self.bootstrap, self.topic, name, str(SESSION_TIMEOUT_MS)]
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.consumer_child", *arguments],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        reader = threading.Thread(target=self._read, args=(child,), name=f"fleet-{name}")
        reader.start()
        self.alive.append(child)
        self._readers.append(reader)

    def _read(self, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        with child.stdout:
            for line in child.stdout:
                event = parse_event(line)
                if event is not None:
                    self.history.record(event)

    def kill(self, rng: random.Random) -> None:
        child = self.alive.pop(rng.randrange(len(self.alive)))
        child.kill()
        child.wait()
        self.history.fault(f"consumer SIGKILLed (pid {child.pid})")

    def leave(self, rng: random.Random) -> None:
        child = self.alive.pop(rng.randrange(len(self.alive)))
        child.terminate()
        child.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        for child in self.alive:
            child.terminate()
        for child in self.alive:
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        self.alive.clear()
        for reader in self._readers:
            reader.join()
