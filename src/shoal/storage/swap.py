"""Putting a cleaned segment in place of the segments it replaces, safe against a crash at any step.

The cleaner writes the new segment beside the old ones, under ``.cleaned`` names, and swaps it in
with these steps (a crash, power loss included, may stop it after any of them)::

    1. write <base>.log.cleaned, .index.cleaned, .timeindex.cleaned; fsync each; fsync the dir
    2. write the manifest ``cleaner-swap`` (base, old bases; sealed, atomic): the commit point
    3. remove the old segments' files; rename .cleaned -> final names (indexes, then the log)
    4. fsync the dir; remove the manifest; fsync the dir

Recovery at open (:func:`recover_swap`) finishes or forgets it: without a manifest every
``.cleaned`` file is an unfinished clean and goes (the old segments are whole); with one, step 1
was durable, so the swap is completed: the old files listed go and the cleaned ones take their
names (if the cleaned log was already renamed, only the old files still present go).

Why a manifest rather than Kafka's ``.swap`` suffix alone: Kafka's recovery finds the segments a
``.swap`` file replaces from the offsets it holds, but when a clean removed the last batches of a
group, the swap file ends before the group did and a replaced segment would survive beside it.
The manifest names every replaced segment.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shoal.storage.fs import FileSystem, read_sealed, sealed, write_atomically
from shoal.storage.handles import FileHandles
from shoal.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, Segment, segment_name

log = logging.getLogger(__name__)

CLEANED_SUFFIX: Final = ".cleaned"
SWAP_MANIFEST: Final = "cleaner-swap"
_MANIFEST_HEAD: Final = struct.Struct(">4sBqI")  # magic, version, base, number of old bases
_OFFSET: Final = struct.Struct(">q")
_MAGIC: Final = b"SHSW"
SEGMENT_SUFFIXES: Final = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX)
"""In renaming order: the log last, so a renamed log always has its fresh indexes or none."""


@dataclass(frozen=True, slots=True)
class SwapManifest:
    base_offset: int
    """The cleaned segment's base offset: the first replaced segment's."""
    old_bases: tuple[int, ...]
    """Base offsets of every segment the cleaned one replaces, in order."""

    def encode(self) -> bytes:
        head = _MANIFEST_HEAD.pack(_MAGIC, 1, self.base_offset, len(self.old_bases))
        return head + b"".join(_OFFSET.pack(b) for b in self.old_bases)

    @classmethod
    def decode(cls, payload: bytes) -> SwapManifest | None:
        if len(payload) < _MANIFEST_HEAD.size:
            return None
        magic, version, base, count = _MANIFEST_HEAD.unpack_from(payload)
        if magic != _MAGIC or version != 1 or len(payload) != _MANIFEST_HEAD.size + 8 * count:
            return None
        bases = tuple(
            _OFFSET.unpack_from(payload, _MANIFEST_HEAD.size + 8 * i)[0] for i in range(count)
        )
        return cls(base, bases)


def manifest_path(directory: str) -> str:
    return os.path.join(directory, SWAP_MANIFEST)


def _stem(directory: str, base: int) -> str:
    return os.path.join(directory, segment_name(base))


def write_manifest(fs: FileSystem, directory: str, new: Segment, old: Sequence[Segment]) -> None:
    """Steps 1 (the dir fsync) and 2: after this the swap happens, crash or not.

    ``new`` is written, fsynced, its indexes saved. Raises OSError as the file system does; the
    caller then fails the directory (recovery at the next open finishes what was committed).
    """
    fs.fsync_dir(directory)
    manifest = SwapManifest(new.base_offset, tuple(s.base_offset for s in old))
    write_atomically(fs, manifest_path(directory), sealed(manifest.encode()))


def finish_commit(fs: FileSystem, directory: str) -> None:
    """Step 4, once :func:`finish_swap_files` ran."""
    fs.fsync_dir(directory)
    fs.remove(manifest_path(directory))
    fs.fsync_dir(directory)


def finish_swap_files(fs: FileSystem, directory: str, new: Segment, old: Sequence[Segment]) -> None:
    """Step 3: the old files go, the cleaned ones take the final names (no fsync)."""
    for segment in old:
        for path in (segment.path, segment.index_path, segment.time_index_path):
            if fs.exists(path):
                fs.remove(path)
    new.rename_suffix(fs, "")


def discard_cleaned(fs: FileSystem, handles: FileHandles, segment: Segment) -> None:
    """Remove the files of a cleaned segment that will not be swapped in.

    Unless the swap was committed and then failed (the directory is failed): once its files
    took their final names the segment is the log's, and while a manifest is there recovery at
    the next open finishes the swap from these very files. Removing them lost the group's data
    after a restart (an I/O error in the last steps of a swap, then a restart)."""
    if segment.suffix != CLEANED_SUFFIX:
        return
    handles.close(segment.path)
    if fs.exists(manifest_path(segment.directory)):
        return
    for path in (segment.path, segment.index_path, segment.time_index_path):
        if fs.exists(path):
            fs.remove(path)


def recover_swap(fs: FileSystem, directory: str) -> None:
    """Finish a committed swap or drop an uncommitted clean (see the module docstring)."""
    name = os.path.basename(directory)
    path = manifest_path(directory)
    changed = False
    if fs.exists(path):
        payload = read_sealed(fs, path)
        manifest = SwapManifest.decode(payload) if payload is not None else None
        if manifest is not None:
            _complete(fs, directory, manifest)
            log.warning(
                "%s: finished swapping in the cleaned segment at offset %d after a crash",
                name,
                manifest.base_offset,
            )
        else:
            # The manifest is written atomically (temporary file, fsync, rename): a damaged
            # one was never the commit point, so the clean did not happen.
            log.warning("%s: ignoring a damaged cleaner swap manifest", name)
        fs.remove(path)
        changed = True
    for entry in fs.listdir(directory):
        if entry.endswith(CLEANED_SUFFIX):
            fs.remove(os.path.join(directory, entry))
            changed = True
    if changed:
        fs.fsync_dir(directory)


def _complete(fs: FileSystem, directory: str, manifest: SwapManifest) -> None:
    stem = _stem(directory, manifest.base_offset)
    if fs.exists(stem + LOG_SUFFIX + CLEANED_SUFFIX):
        doomed = manifest.old_bases
    else:
        # The cleaned log already took its name: the base's files are the new ones.
        doomed = tuple(b for b in manifest.old_bases if b != manifest.base_offset)
    for base in doomed:
        for suffix in SEGMENT_SUFFIXES:
            target = _stem(directory, base) + suffix
            if fs.exists(target):
                fs.remove(target)
    for suffix in SEGMENT_SUFFIXES:
        cleaned = stem + suffix + CLEANED_SUFFIX
        if fs.exists(cleaned):
            fs.rename(cleaned, stem + suffix)
    fs.fsync_dir(directory)
