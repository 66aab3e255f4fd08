"""shoal's own Kafka client of its broker (the schema registry) on a SASL listener.

The registry is a Kafka client of the broker it runs in. On a SASL listener it logs in as
:data:`INTERNAL_USER` with a password drawn at start and known only to this process: the
credential is held in memory (:meth:`ScramCredentialStore.add_internal`), never saved or
listed, and a new one is drawn at every start.
"""

from __future__ import annotations

import secrets
from typing import Final

from shoal.security.sasl import PLAIN, SCRAM_SHA_256, SCRAM_SHA_512
from shoal.security.scram import ALGORITHMS, ITERATIONS_MIN, new_credential
from shoal.security.scram_store import INTERNAL_USER, ScramCredentialStore
from shoal.server.authentication import SaslServerConfig

_PREFERENCE: Final = (SCRAM_SHA_512, SCRAM_SHA_256, PLAIN)


def internal_client(
    sasl: SaslServerConfig | None, credentials: ScramCredentialStore
) -> dict[str, str] | None:
    """The client settings shoal's own clients use: {} on a PLAINTEXT listener; None when no
    enabled mechanism takes a password (OAUTHBEARER only)."""
    if sasl is None:
        return {}
    mechanism = next((m for m in _PREFERENCE if m in sasl.enabled_mechanisms), None)
    if mechanism is None:
        return None
    password = secrets.token_urlsafe(32)
    credentials.add_internal(
        INTERNAL_USER,
        {
            name: new_credential(algorithm, password, ITERATIONS_MIN)
            for name, algorithm in ALGORITHMS.items()
        },
    )
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": INTERNAL_USER,
        "sasl.password": password,
    }
