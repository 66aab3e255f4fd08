"""SCRAM credentials of every user, kept in the data directory: salts and keys, never passwords.

``scram-credentials.json`` (base64 for the binary fields)::

    {"version": 1, "users": {"alice": {"SCRAM-SHA-512": {
        "salt": "...", "stored_key": "...", "server_key": "...", "iterations": 8192}}}}

It is replaced atomically on every change (see :func:`shoal.storage.fs.write_atomically`), so a
crash leaves the old or the new set. A damaged file stops the broker with a message rather than
letting it start with nobody able to log in, or with users nobody chose.

Credentials are Kafka's, per user and per mechanism, managed with AlterUserScramCredentials
(API 51). The same store answers PLAIN logins: a password is valid when it matches either of
the user's SCRAM credentials.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from shoal.security.scram import (
    ALGORITHMS,
    ITERATIONS_MIN,
    SHA_512,
    ScramAlgorithm,
    ScramCredential,
    credential_from_salted,
    salted_password,
)
from shoal.storage.documents import DocumentDamaged, read_document, write_document
from shoal.storage.fs import FileSystem

SCRAM_CREDENTIALS_FILE: Final = "scram-credentials.json"
_VERSION: Final = 1


INTERNAL_USER: Final = "__shoal_internal"
"""The user shoal's own clients (the schema registry) log in as on a SASL listener: held in
memory only (:meth:`ScramCredentialStore.add_internal`), refused to AlterUserScramCredentials,
and a super user to the authorizer (:data:`INTERNAL_PRINCIPAL`)."""
INTERNAL_PRINCIPAL: Final = f"User:{INTERNAL_USER}"


class ScramCredentialsDamaged(DocumentDamaged):
    """scram-credentials.json cannot be read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Upsertion:
    user: str
    algorithm: ScramAlgorithm
    credential: ScramCredential


@dataclass(frozen=True, slots=True)
class Deletion:
    user: str
    algorithm: ScramAlgorithm


class ScramCredentialStore:
    def __init__(self, fs: FileSystem, data_dir: str) -> None:
        self._fs = fs
        self._path = os.path.join(data_dir, SCRAM_CREDENTIALS_FILE)
        self._users: dict[str, dict[str, ScramCredential]] = {}
        self._internal: dict[str, dict[str, ScramCredential]] = {}
        # Decoy salts for unknown users (see shoal.security.scram): derived from a key that
        # lives as long as the process, so one name always gets the same salt.
        self._decoy_key = secrets.token_bytes(32)
        self._applying = threading.Lock()
        self.version = 0
        """Bumped by every change: whoever remembers a verified password (the HTTP face)
        trusts it only while the version it was checked at is still current."""
        if fs.exists(self._path):
            self._load()

    def _load(self) -> None:
        try:
            doc = read_document(self._fs, self._path, version=_VERSION) or {"users": {}}
            users: dict[str, dict[str, ScramCredential]] = {}
            for user, mechanisms in doc["users"].items():
                users[str(user)] = {
                    _mechanism(name).name: _decode(value) for name, value in mechanisms.items()
                }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ScramCredentialsDamaged(
                f"{self._path} cannot be used ({exc}); restore it from a backup, or remove it "
                "and create the users again"
            ) from exc
        self._users = users

    # -- reading ------------------------------------------------------------------------

    def get(self, user: str, algorithm: ScramAlgorithm) -> ScramCredential | None:
        internal = self._internal.get(user)
        if internal is not None:
            return internal.get(algorithm.name)
        return self._users.get(user, {}).get(algorithm.name)

    def users(self) -> list[str]:
        return sorted(self._users)

    def mechanisms_of(self, user: str) -> dict[str, int]:
        """Mechanism name -> iterations, for each credential ``user`` has (none: empty)."""
        return {name: c.iterations for name, c in self._users.get(user, {}).items()}

    def decoy(self, user: str, algorithm: ScramAlgorithm) -> ScramCredential:
        seed = hmac.new(self._decoy_key, f"{algorithm.name}\0{user}".encode(), "sha256").digest()
        return ScramCredential(
            salt=seed,
            # Random keys: no password matches them (and the server refuses a decoy anyway).
            stored_key=secrets.token_bytes(algorithm.digest_bytes),
            server_key=secrets.token_bytes(algorithm.digest_bytes),
            iterations=ITERATIONS_MIN,
        )

    def check_password(self, user: str, password: str) -> bool:
        """PLAIN's check: does ``password`` match one of ``user``'s SCRAM credentials?

        An unknown user costs one PBKDF2 like a known one, so the time taken does not say
        whether the user exists.
        """
        credentials = self._internal.get(user) or self._users.get(user) or {}
        secret = password.encode()
        if not credentials:
            decoy = self.decoy(user, SHA_512)
            salted_password(SHA_512, secret, decoy.salt, decoy.iterations)
            return False
        for name, credential in credentials.items():
            algorithm = ALGORITHMS[name]
            salted = salted_password(algorithm, secret, credential.salt, credential.iterations)
            candidate = credential_from_salted(
                algorithm, salted, credential.salt, credential.iterations
            )
            if hmac.compare_digest(candidate.stored_key, credential.stored_key):
                return True
        return False

    # -- changing -----------------------------------------------------------------------

    def add_internal(self, user: str, credentials: Mapping[str, ScramCredential]) -> None:
        """A user known only to this process (shoal's own clients, e.g. the schema registry):
        never saved, never listed, gone at restart."""
        with self._applying:  # the version counts every change, whichever thread makes it
            self._internal[user] = dict(credentials)
            self.version += 1

    def apply(self, upsertions: Iterable[Upsertion], deletions: Iterable[Deletion]) -> None:
        """Apply one AlterUserScramCredentials request's accepted changes, all or none: saved
        before they count (if the save fails, memory stays as it was). Thread-safe: the admin
        API applies on a worker thread (the save blocks), the Kafka API on the event loop;
        one at a time, so neither saves a set that misses the other's change. Readers see the
        old set or the new one, never half of it (one reference swap)."""
        with self._applying:
            self._apply(upsertions, deletions)

    def _apply(self, upsertions: Iterable[Upsertion], deletions: Iterable[Deletion]) -> None:
        users = {user: dict(mechanisms) for user, mechanisms in self._users.items()}
        for deletion in deletions:
            mechanisms = users.get(deletion.user, {})
            mechanisms.pop(deletion.algorithm.name, None)
            if not mechanisms:
                users.pop(deletion.user, None)
        for upsertion in upsertions:
            users.setdefault(upsertion.user, {})[upsertion.algorithm.name] = upsertion.credential
        self._save(users)
        self._users = users
        self.version += 1

    def _save(self, users: Mapping[str, Mapping[str, ScramCredential]]) -> None:
        body = {
            "users": {
                user: {name: _encode(c) for name, c in mechanisms.items()}
                for user, mechanisms in users.items()
            },
        }
        write_document(self._fs, self._path, body, version=_VERSION, sort_keys=True)


def _mechanism(name: str) -> ScramAlgorithm:
    algorithm = ALGORITHMS.get(name)
    if algorithm is None:
        raise ValueError(f"unknown SCRAM mechanism {name!r}")
    return algorithm


def _encode(credential: ScramCredential) -> dict[str, object]:
    return {
        "salt": base64.b64encode(credential.salt).decode(),
        "stored_key": base64.b64encode(credential.stored_key).decode(),
        "server_key": base64.b64encode(credential.server_key).decode(),
        "iterations": credential.iterations,
    }


def _decode(value: Mapping[str, object]) -> ScramCredential:
    iterations = value["iterations"]
    if not isinstance(iterations, int):
        raise ValueError("iterations must be an integer")
    return ScramCredential(
        salt=base64.b64decode(str(value["salt"]), validate=True),
        stored_key=base64.b64decode(str(value["stored_key"]), validate=True),
        server_key=base64.b64decode(str(value["server_key"]), validate=True),
        iterations=iterations,
    )


__all__ = ["Deletion", "ScramCredentialStore", "ScramCredentialsDamaged", "Upsertion"]
