"""``shoal group list`` for KIP-932 share groups: librdkafka's group listing asks only for
classic and consumer groups, so the CLI sends ListGroups v5 with the ``share`` type filter
itself (:mod:`shoal.cli.wire`) to each broker (a broker lists the groups it coordinates: one
shoal node coordinates every group, a Kafka cluster spreads them). Plaintext listeners only,
like group_members."""

from __future__ import annotations

from typing import Any, Final

from shoal.cli.wire import request

LIST_GROUPS: Final = 16
VERSION: Final = 5
SHARE_TYPE: Final = "share"


def list_share_groups(host: str, port: int, timeout_s: float) -> list[tuple[str, str]]:
    """(group id, state) of every share group the broker coordinates. Raises OSError (or
    ConnectionError) when it cannot be asked."""
    response = request(
        (host, port),
        LIST_GROUPS,
        VERSION,
        {"states_filter": [], "types_filter": [SHARE_TYPE]},
        timeout_s,
    )
    answer: Any = response
    if int(answer.error_code) != 0:
        raise ConnectionError(f"ListGroups failed with error {int(answer.error_code)}")
    return sorted((g.group_id, g.group_state) for g in answer.groups)
