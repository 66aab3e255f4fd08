"""ListTransactions (66): the transactional ids the coordinator knows, as
``kafka-transactions list`` shows them.

Filters, all optional and combined: states (names Kafka uses; unknown ones are returned in
``unknown_state_filters`` and match nothing), producer ids, v1+ a minimum duration (ms the
open transaction has run) and v2+ a regular expression the id must match (Java's
``Pattern.matches``, so the whole id; an invalid pattern is INVALID_REGULAR_EXPRESSION). Only
ids the principal may Describe are listed, as in Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from shoal.coordinator.txn_state import TxnState, parse_txn_state
from shoal.protocol import ErrorCode, Request, ResponseBody
from shoal.protocol.build import response_for
from shoal.protocol.shape import request_body
from shoal.security.acl import AclOperation, ResourceType

if TYPE_CHECKING:
    from shoal.broker.broker import Broker
    from shoal.broker.context import RequestContext

PATTERN_CHARS_MAX: Final = 1024
"""A longer transactional_id_pattern is refused: a regular expression is run against every id,
and a bound on its size bounds what one request can cost."""


class _ListTransactionsRequest(Protocol):
    """duration_filter (v1+) and transactional_id_pattern (v2+) are read with getattr."""

    state_filters: Sequence[str]
    producer_id_filters: Sequence[int]


async def handle_list_transactions(
    broker: Broker, ctx: RequestContext, request: Request
) -> ResponseBody:
    header, body = request.header, request_body(request.body, _ListTransactionsRequest)
    values: dict[str, Any] = {"throttle_time": 0, "error_code": ErrorCode.NONE}
    states: set[TxnState] = set()
    unknown: list[str] = []
    for name in body.state_filters:
        state = parse_txn_state(str(name))
        if state is None:
            unknown.append(str(name))
        else:
            states.add(state)
    pattern_text = getattr(body, "transactional_id_pattern", None)
    pattern = None
    if pattern_text:
        try:
            if len(pattern_text) > PATTERN_CHARS_MAX:
                raise re.error(f"longer than {PATTERN_CHARS_MAX} characters")
            pattern = re.compile(str(pattern_text))
        except re.error:
            values["error_code"] = ErrorCode.INVALID_REGULAR_EXPRESSION
            return response_for(header.api_key, header.api_version, values)
    producer_ids = {int(p) for p in body.producer_id_filters}
    duration_ms = int(getattr(body, "duration_filter", -1))
    now = broker.clock.now_ms()
    listed = []
    for meta in sorted(broker.transactions.coordinator, key=lambda m: m.transactional_id):
        if body.state_filters and meta.state not in states:
            continue
        if producer_ids and meta.producer_id not in producer_ids:
            continue
        if duration_ms >= 0 and (meta.txn_start_ms < 0 or now - meta.txn_start_ms < duration_ms):
            continue
        if pattern is not None and pattern.fullmatch(meta.transactional_id) is None:
            continue
        if not broker.authorize(
            ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, meta.transactional_id
        ):
            continue
        listed.append(
            {
                "transactional_id": meta.transactional_id,
                "producer_id": meta.producer_id,
                "transaction_state": meta.state.value,
            }
        )
    values["unknown_state_filters"] = unknown
    values["transaction_states"] = listed
    return response_for(header.api_key, header.api_version, values)
