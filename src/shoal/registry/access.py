"""Who may read and write which subjects of the registry.

The registry asks one question, ``may(principal, action, subject)``, of an authorizer it is
given; inside the broker the answer comes from the broker's ACLs (see
:func:`shoal.server.registry_access`), so one set of rules covers a topic and its schemas.
Without an authorizer everyone may do everything, as before.

What each route needs:

- **read** a subject: its versions, lookups, compatibility checks, its config and mode;
- **write** a subject: register, delete, change its config or mode;
- **read** with no subject: schemas by id or guid, the global config and mode, the types; the
  subject listing shows only the subjects the principal may read;
- **write** with no subject: the global config and mode.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Protocol

PRINCIPAL_SCOPE_KEY: Final = "shoal.principal"
"""Where the HTTP face's authentication leaves the principal in the ASGI scope."""
ANONYMOUS: Final = "User:ANONYMOUS"


class Action(Enum):
    READ = "read"
    WRITE = "write"


class SubjectAuthorizer(Protocol):
    def may(self, principal: str, host: str, action: Action, subject: str | None) -> bool:
        """Whether ``principal`` (connecting from ``host``) may do ``action`` on ``subject``
        (None: the registry as a whole)."""
        ...


class AllowEverything:
    def may(self, principal: str, host: str, action: Action, subject: str | None) -> bool:
        return True


def denied_message(principal: str, action: Action, subject: str | None) -> str:
    target = f"subject {subject!r}" if subject is not None else "the registry's global settings"
    return f"User {principal} is denied {action.value} on {target}"


DENIED_ERROR_CODE: Final = 40301
"""Confluent's registry answers an authorization failure with HTTP 403 and error code 40301."""


def topic_of(subject: str) -> str:
    """The topic whose ACLs govern ``subject``: ``orders`` for ``orders-value`` and
    ``orders-key`` (the default TopicNameStrategy); the subject itself otherwise (record-name
    subjects are governed by a topic ACL of that name, PREFIXED ACLs included)."""
    for suffix in ("-value", "-key"):
        if subject.endswith(suffix) and len(subject) > len(suffix):
            return subject[: -len(suffix)]
    return subject
