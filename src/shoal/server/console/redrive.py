"""Where the console may redrive a dead-lettered record: the rule both admin API backends
(the broker's and ``shoal console``'s) apply to a produce that says it is a redrive.

The page picks the target: the topic the user names, or the record's
``shoal.dlq.original.topic`` header. Whoever could write to the DLQ chose that header, so the
API checks the target too: it must exist (a redrive never creates a topic), must not be the DLQ
itself, and must not be internal — Kafka's ``__consumer_offsets``, ``__transaction_state``...,
the schema registry's ``_schemas`` and Confluent's ``_confluent-*``: by convention, every name
that starts with ``_``. And unless the user named the target (``redrive_target_chosen``), it
must be the DLQ's own origin by the framework's naming (``<topic>.dlq`` holds ``<topic>``'s
failures): the header alone never sends records, as the admin, to any other topic. Refused with
400 before anything is written.
"""

from __future__ import annotations

from typing import Final

INTERNAL_PREFIX: Final = "_"
"""Kafka's internal topics start with ``__``; the registry's ``_schemas`` and Confluent's
``_confluent-*`` with ``_``."""
DLQ_SUFFIX: Final = ".dlq"
"""The framework's DLQ naming (``shoal.app.resilience.dlq.DLQ_SUFFIX``, which the server
may not import): ``<topic>.dlq``."""
REFUSED: Final = "redrive_target_refused"
"""The error slug of a refused redrive target (HTTP 400)."""


def redrive_refusal(
    target: str, dlq: str, *, exists: bool, internal: bool, chosen: bool = False
) -> str | None:
    """Why records of ``dlq`` may not be redriven into ``target``, or None. ``exists`` and
    ``internal``: what the cluster says of ``target``; ``chosen``: the user named it (else it
    came from a record's header)."""
    if target == dlq:
        return f"cannot redrive {dlq!r} into itself"
    if not exists:
        return f"redrive target {target!r} does not exist: name an existing topic"
    if internal or target.startswith(INTERNAL_PREFIX):
        return f"redrive target {target!r} is an internal topic: records are never redriven there"
    if not chosen and target != dlq_origin(dlq):
        return (
            f"redrive target {target!r} is not the origin of {dlq!r}: name the target to "
            "redrive its records anywhere else"
        )
    return None


def dlq_origin(dlq: str) -> str | None:
    """The topic whose failures ``dlq`` holds by the framework's naming, or None."""
    return dlq.removesuffix(DLQ_SUFFIX) if dlq.endswith(DLQ_SUFFIX) else None
