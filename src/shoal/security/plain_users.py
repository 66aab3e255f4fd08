"""PLAIN users from a file of salted password hashes, beside the SCRAM users.

One user a line, ``#`` comments and blank lines ignored::

    alice:pbkdf2-sha512:8192:<base64 salt>:<base64 hash>

The hash is PBKDF2-HMAC-SHA512 of the UTF-8 password with that salt and iteration count
(:func:`hash_line` writes such a line; ``shoal user hash NAME`` prints one). Sans-IO: the
server reads the file and hands its text to :func:`parse_users`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Final

from shoal.security.scram import ITERATIONS_MAX, ITERATIONS_MIN

SCHEME: Final = "pbkdf2-sha512"
SALT_BYTES: Final = 16
_DECOY_SALT: Final = b"shoal-plain-decoy"


class UsersFileError(ValueError):
    """A line of the users file that cannot be used; the message says which and why (never
    a hash)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    iterations: int


def hash_line(user: str, password: str, iterations: int = 8192) -> str:
    if ":" in user or not user or "\n" in user:
        raise UsersFileError("a user name in the users file must be non-empty, without ':'")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return ":".join(
        (user, SCHEME, str(iterations), base64.b64encode(salt).decode(),
         base64.b64encode(digest).decode())
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PlainUsers:
    _entries: dict[str, _Entry] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s; an unknown user costs the same hash."""
        entry = self._entries.get(user)
        salt, iterations = (entry.salt, entry.iterations) if entry else (_DECOY_SALT, 8192)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        return entry is not None and hmac.compare_digest(digest, entry.digest)

    def knows(self, user: str) -> bool:
        return user in self._entries


def parse_users(text: str, source: str = "the users file") -> PlainUsers:
    entries: dict[str, _Entry] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source} line {number}"
        parts = line.split(":")
        if len(parts) != 5 or parts[1] != SCHEME or not parts[0]:
            raise UsersFileError(f"{where}: expected NAME:{SCHEME}:ITERATIONS:SALT:HASH")
        user, _, iterations_text, salt_text, digest_text = parts
        if user in entries:
            raise UsersFileError(f"{where}: user {user!r} is listed twice")
        if not iterations_text.isdigit() or not (
            ITERATIONS_MIN <= int(iterations_text) <= ITERATIONS_MAX
        ):
            raise UsersFileError(
                f"{where}: iterations must be {ITERATIONS_MIN} to {ITERATIONS_MAX}"
            )
        try:
            salt = base64.b64decode(salt_text, validate=True)
            digest = base64.b64decode(digest_text, validate=True)
        except (binascii.Error, ValueError):
            raise UsersFileError(f"{where}: salt and hash must be base64") from None
        if len(digest) != hashlib.sha512().digest_size or not salt:
            raise UsersFileError(f"{where}: the hash is not a PBKDF2-SHA512 digest")
        entries[user] = _Entry(salt, digest, int(iterations_text))
    return PlainUsers(entries)
