"""Small JSON documents the broker keeps at the root of its data directory, with a format version.

``topics.json``, ``acls.json``, ``scram-credentials.json``, ``quotas.json`` and
``broker-configs.json`` share one shape: a JSON object whose ``"version"`` field names the
format, replaced atomically on every change (:func:`shoal.storage.fs.write_atomically`). Reading
refuses a version this build does not know, in words that tell an operator which way the
mismatch goes (a newer shoal wrote it, or the file is not one of ours), rather than guessing at
fields and silently dropping what it does not understand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shoal.storage.fs import FileSystem, read_whole, write_atomically


class DocumentDamaged(RuntimeError):
    """A store's document cannot be used; each store subclasses this with a message saying
    what to do, so that ``shoal broker`` can report any of them the same way at start."""


class DocumentFormatError(ValueError):
    """The document is not JSON, not an object, or in a format version this build cannot read.

    A ``ValueError``, so that stores which already turn ``ValueError`` into their own
    "damaged, here is what to do" error handle it with the rest.
    """


def read_document(fs: FileSystem, path: str, *, version: int) -> dict[str, Any] | None:
    """The document at ``path`` (None if there is no file), checked to be format ``version``."""
    if not fs.exists(path):
        return None
    try:
        doc = json.loads(read_whole(fs, path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocumentFormatError(f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DocumentFormatError(f"a JSON {type(doc).__name__}, not an object")
    found = doc.get("version")
    if type(found) is int and found == version:  # type(): JSON's true is a bool, == 1
        return doc
    if type(found) is int and found > version:
        raise DocumentFormatError(
            f"format version {found} was written by a newer shoal; this one reads version "
            f"{version} (run the newer shoal, or restore the file from a backup)"
        )
    raise DocumentFormatError(f"unknown format version {found!r} (this shoal reads {version})")


def write_document(
    fs: FileSystem,
    path: str,
    body: Mapping[str, object],
    *,
    version: int,
    sort_keys: bool = False,
) -> None:
    """Replace ``path`` with ``body`` as format ``version``, atomically (old or new, never torn)."""
    doc = {"version": version, **body}
    data = json.dumps(doc, indent=1, sort_keys=sort_keys).encode()
    write_atomically(fs, path, data)
