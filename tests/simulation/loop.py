"""An asyncio event loop that runs on the simulation's fake clock and never uses a thread.

The broker is asyncio code: handlers await fsyncs, the group and transaction coordinators sleep
until their deadlines, and a few jobs (snapshots, DeleteRecords) go to a worker thread. For a
run to replay exactly from its seed, three things are taken from the scheduler here:

- time: :meth:`SimLoop.time` is the fake clock's monotonic time, so ``asyncio.sleep``,
  ``wait_for`` and ``asyncio.timeout`` expire only when the scheduler advances the clock;
- progress: :meth:`SimLoop.settle` runs callbacks until none is ready, and returns (it never
  blocks in the selector waiting for a timer);
- threads: the default executor queues each job instead of starting a thread; the scheduler
  runs them, one at a time, when its random choice says so (:meth:`DeferredExecutor.run_one`).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

from shoal.testing.clock import FakeClock

SETTLE_ROUNDS_MAX: Final = 10_000
"""Loop iterations one settle may take: far more than any request needs; reaching it means
something schedules itself forever (a busy loop), which is a bug to report, not to wait out."""


class DeferredExecutor(ThreadPoolExecutor):
    """The loop's default executor: jobs wait in a queue until the scheduler runs them.

    A ThreadPoolExecutor only because asyncio insists on one; it never starts a thread.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        invariant_no_kwargs(kwargs)
        future: Future[Any] = Future()
        self.jobs.append((fn, args, future))
        return future

    def run_one(self, rng: random.Random) -> str | None:
        """Run one queued job (the RNG picks which); its name, or None if none waits."""
        if not self.jobs:
            return None
        fn, args, future = self.jobs.pop(rng.randrange(len(self.jobs)))
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as exc:
                future.set_exception(exc)
        return job_name(fn)

    def run_all(self, rng: random.Random) -> None:
        while self.jobs:
            self.run_one(rng)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for _fn, _args, future in self.jobs:
            future.cancel()
        self.jobs.clear()


def job_name(fn: Callable[..., Any]) -> str:
    """The function a job runs, named without addresses (the trace must replay exactly):
    ``asyncio.to_thread`` hands over ``partial(context.run, function, *args)``."""
    while isinstance(fn, functools.partial):
        inner = fn.func
        fn = fn.args[0] if getattr(inner, "__name__", "") == "run" and fn.args else inner
    return str(getattr(fn, "__qualname__", type(fn).__name__))


def invariant_no_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs:  # run_in_executor passes positional arguments only
        raise TypeError(f"unexpected keyword arguments for an executor job: {sorted(kwargs)}")


class SimLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._sim_clock = clock
        self.executor = DeferredExecutor()
        self.set_default_executor(self.executor)
        self.unhandled: list[str] = []
        """What asyncio reports as unhandled (a callback's or a lost task's exception)."""
        self.set_exception_handler(self._unhandled)

    def _unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.unhandled.append(f"{context.get('message')}: {context.get('exception')!r}")

    def time(self) -> float:
        return self._sim_clock.monotonic_ms() / 1000.0

    def settle(self) -> None:
        """Run every ready callback, and those they make ready, until the loop is idle
        (every task waits for a timer in the future, an fsync, or a queued job)."""
        for _ in range(SETTLE_ROUNDS_MAX):
            self.call_soon(self.stop)
            self.run_forever()
            # asyncio has no public "anything ready?"; _ready is its run queue.
            if not self._ready:  # type: ignore[attr-defined]
                return
        raise RuntimeError(f"the event loop did not settle in {SETTLE_ROUNDS_MAX} rounds")

    def shut(self) -> None:
        """Cancel every task and close: the incarnation is gone."""
        tasks = asyncio.all_tasks(self)
        for task in tasks:
            task.cancel()
        self.executor.shutdown()
        self.settle()
        self.close()
