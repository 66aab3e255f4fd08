"""Holding a clean at a chosen step: the cleaner's test seam.

:data:`shoal.storage.cleaner_process.step_hook_for_tests` is called at every batch a clean
reads or writes, on the cleaner's thread and, pickled with each job, in the cleaner's process.
It is no setting of the product: tests set it here, for the cleaners started inside the
``with`` block, and it is unset after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shoal.invariant import invariant
from shoal.storage import cleaner_process


@contextmanager
def cleaner_step_hook(hook: Callable[[], None]) -> Iterator[None]:
    """Call ``hook`` (picklable, for the cleaner's process) at every step of the cleans that
    start inside the block."""
    invariant(cleaner_process.step_hook_for_tests is None, "one cleaner step hook at a time")
    cleaner_process.step_hook_for_tests = hook
    try:
        yield
    finally:
        cleaner_process.step_hook_for_tests = None
