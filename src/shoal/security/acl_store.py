"""The ACLs kept in the data directory, in ``acls.json``:

    {"version": 1, "acls": [{"resource_type": "TOPIC", "resource_name": "orders",
      "pattern_type": "LITERAL", "principal": "User:alice", "host": "*",
      "operation": "READ", "permission_type": "ALLOW"}, ...]}

Names rather than codes, so that a person reading the file understands it. It is replaced
atomically on every change (temporary file, fsync, rename, directory fsync): a crash leaves the
old set or the new one. A missing file is no ACLs; a damaged one stops the broker with a message
rather than starting with ACLs nobody chose (fewer DENYs would let principals in).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from shoal.security.acl import (
    AclBinding,
    AclError,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
    validate_binding,
)
from shoal.storage.documents import DocumentDamaged, read_document, write_document
from shoal.storage.fs import FileSystem

ACLS_FILE: Final = "acls.json"
_VERSION: Final = 1


class AclsDamaged(DocumentDamaged):
    """acls.json cannot be read; the message says what to do."""


class AclStore:
    def __init__(self, fs: FileSystem, data_dir: str) -> None:
        self._fs = fs
        self.path = os.path.join(data_dir, ACLS_FILE)

    def load(self) -> list[AclBinding]:
        try:
            doc = read_document(self._fs, self.path, version=_VERSION)
            if doc is None:
                return []
            bindings = [_binding(entry) for entry in doc["acls"]]
            for binding in bindings:
                validate_binding(binding)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AclsDamaged(
                f"{self.path} cannot be used ({exc}); restore it from a backup, or fix the entry "
                "it names (removing it drops every ACL, which denies everyone but super users)"
            ) from exc
        return bindings

    def save(self, bindings: Iterable[AclBinding]) -> None:
        write_document(
            self._fs, self.path, {"acls": [_entry(b) for b in bindings]}, version=_VERSION
        )


def _entry(binding: AclBinding) -> dict[str, str]:
    return {
        "resource_type": binding.resource_type.name,
        "resource_name": binding.resource_name,
        "pattern_type": binding.pattern_type.name,
        "principal": binding.principal,
        "host": binding.host,
        "operation": binding.operation.name,
        "permission_type": binding.permission_type.name,
    }


def _binding(entry: dict[str, object]) -> AclBinding:
    def text(key: str) -> str:
        value = entry[key]
        if not isinstance(value, str):
            raise AclError(f"{key} must be a string, not {value!r}")
        return value

    return AclBinding(
        resource_type=ResourceType[text("resource_type")],
        resource_name=text("resource_name"),
        pattern_type=PatternType[text("pattern_type")],
        principal=text("principal"),
        host=text("host"),
        operation=AclOperation[text("operation")],
        permission_type=PermissionType[text("permission_type")],
    )
