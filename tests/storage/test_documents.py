"""The versioned JSON documents at the root of a data directory (topics, ACLs, users...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.storage.documents import DocumentFormatError, read_document, write_document
from shoal.storage.fs import OsFileSystem


def test_a_written_document_reads_back_with_its_version(tmp_path: Path) -> None:
    path = str(tmp_path / "doc.json")
    write_document(OsFileSystem(), path, {"items": [1, 2]}, version=3)
    assert read_document(OsFileSystem(), path, version=3) == {"version": 3, "items": [1, 2]}
    assert not (tmp_path / "doc.json.tmp").exists()


def test_no_file_is_no_document(tmp_path: Path) -> None:
    assert read_document(OsFileSystem(), str(tmp_path / "absent.json"), version=1) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"version": 2, "items": []}', "written by a newer shoal; this one reads version 1"),
        (b'{"version": 0}', "unknown format version 0"),
        (b'{"version": "1"}', "unknown format version '1'"),
        (b'{"version": true}', "unknown format version True"),
        (b'{"items": []}', "unknown format version None"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_a_document_in_another_format_is_refused_with_the_reason(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(DocumentFormatError, match=message):
        read_document(OsFileSystem(), str(path), version=1)
