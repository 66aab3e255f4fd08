"""Opening a partition's segments after a clean shutdown or a crash.

Segments wholly below the recovery point (fsynced before the checkpoint was written) load
their saved indexes and have only their tail checked for structure: their bytes were durable,
so damage there is real corruption and refuses the partition. A segment reaching past the
recovery point is walked batch by batch with CRC checks: damage before the recovery point
refuses the partition; damage after it is a torn tail, which is cut, and every later segment
goes with it (appends only reach a new segment after the previous one is durable, so nothing
acknowledged can live past a torn segment).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from shoal.storage.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint
from shoal.storage.config import LogConfig
from shoal.storage.errors import CorruptLogError
from shoal.storage.fs import FileSystem
from shoal.storage.handles import FileHandles
from shoal.storage.segment import LOG_SUFFIX, Segment
from shoal.storage.swap import recover_swap

log = logging.getLogger(__name__)


@dataclass
class RecoveredLog:
    segments: list[Segment]
    """In offset order; empty when the directory held no segment."""
    checkpoint: Checkpoint | None
    rebuilt: list[Segment]
    """Segments walked and checked because they reach past the recovery point; after a crash
    their bytes may still sit in the page cache, so the caller fsyncs them before trusting."""


def recover_segments(
    fs: FileSystem,
    directory: str,
    handles: FileHandles,
    config: LogConfig,
    *,
    now_ms: Callable[[], int],
    clean_shutdown: bool,
    allow_gaps: bool = False,
) -> RecoveredLog:
    """Open the segments in ``directory``; ``allow_gaps`` for a log the cleaner may have
    compacted (offsets then only increase, between batches and between segments)."""
    name = os.path.basename(directory)
    recover_swap(fs, directory)
    bases = _remove_stray_files(fs, directory)
    checkpoint = read_checkpoint(fs, directory)
    recovery_point = checkpoint.recovery_point if checkpoint is not None else 0
    if checkpoint is None and bases and fs.exists(os.path.join(directory, CHECKPOINT_FILE)):
        log.warning("%s: checkpoint file is damaged; re-checking the whole log", name)
    segments: list[Segment] = []
    rebuilt: list[Segment] = []
    for i, base in enumerate(bases):
        segment = Segment(
            directory,
            base,
            handles,
            index_interval_bytes=config.index_interval_bytes,
            created_ms=now_ms(),
            allow_gaps=allow_gaps,
        )
        below = clean_shutdown or (i + 1 < len(bases) and bases[i + 1] <= recovery_point)
        gap_ok = allow_gaps and segments and base > segments[-1].next_offset
        if segments and base != segments[-1].next_offset and not gap_ok:
            if below or segments[-1].next_offset < recovery_point:
                raise CorruptLogError(
                    f"{segment.path}: starts at offset {base} but the previous segment "
                    f"ends at {segments[-1].next_offset}; data below the recovery point "
                    f"({recovery_point}) is missing. The partition is offline; files kept."
                )
            _drop_segments(fs, directory, handles, bases[i:], "does not continue the log")
            break
        if below:
            _load_below_recovery_point(fs, segment)
            segments.append(segment)
            continue
        # Every batch of a segment that reaches past the recovery point has its CRC checked:
        # damage before the recovery point is refused, damage after it is a torn tail.
        problem = segment.rebuild(crc_from_offset=base)
        segments.append(segment)
        rebuilt.append(segment)
        if problem is not None:
            if segment.next_offset < recovery_point:
                raise CorruptLogError(segment.describe_problem(problem, "before the checkpoint"))
            log.warning(
                "%s: cutting torn tail at byte %d of %s: %s",
                name,
                problem.position,
                segment.path,
                problem.reason,
            )
            segment.cut_at(problem.position)
            _drop_segments(fs, directory, handles, bases[i + 1 :], "follows a torn segment")
            break
    if segments and not clean_shutdown and segments[-1].next_offset < recovery_point:
        raise CorruptLogError(
            f"{directory}: log ends at offset {segments[-1].next_offset} but offsets up to "
            f"{recovery_point} were fsynced; a segment was truncated or removed. "
            "The partition is offline and its files are kept."
        )
    return RecoveredLog(segments, checkpoint, rebuilt)


def _load_below_recovery_point(fs: FileSystem, segment: Segment) -> None:
    if segment.load_sealed(fs):
        return
    problem = segment.rebuild(crc_from_offset=None)
    if problem is not None:
        raise CorruptLogError(segment.describe_problem(problem, "below the recovery point"))
    segment.save_indexes(fs)  # repaired: the next start loads them


def _remove_stray_files(fs: FileSystem, directory: str) -> list[int]:
    """Base offsets of the segment files; temporary and orphaned index files are removed."""
    names = fs.listdir(directory)
    bases = sorted(
        int(n[:-4]) for n in names if n.endswith(LOG_SUFFIX) and _is_segment_stem(n[:-4])
    )
    stems = {f"{b:020d}" for b in bases}
    removed = False
    for entry in names:
        stem, _, suffix = entry.partition(".")
        if entry.endswith(".tmp") or (suffix in ("index", "timeindex") and stem not in stems):
            fs.remove(os.path.join(directory, entry))
            removed = True
    if removed:
        fs.fsync_dir(directory)
    return bases


def _drop_segments(
    fs: FileSystem, directory: str, handles: FileHandles, bases: list[int], why: str
) -> None:
    for base in bases:
        segment = Segment(directory, base, handles, index_interval_bytes=1, created_ms=0)
        log.warning(
            "%s: removing segment %s: it %s", os.path.basename(directory), segment.path, why
        )
        remove_segment_files(fs, handles, segment)
    if bases:
        fs.fsync_dir(directory)


def remove_segment_files(fs: FileSystem, handles: FileHandles, segment: Segment) -> None:
    handles.close(segment.path)
    for path in (segment.path, segment.index_path, segment.time_index_path):
        if fs.exists(path):
            fs.remove(path)


def _is_segment_stem(stem: str) -> bool:
    return len(stem) == 20 and stem.isdigit()
