"""What a handler knows about the request besides its body."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _nothing() -> None:
    """The default of :attr:`RequestContext.on_effects_applied`: nobody is waiting."""


UNBOUNDED_RESPONSE_BYTES = 2**31 - 1
"""The room of a request with no connection behind it (tests calling handlers directly)."""


def _unbounded() -> int:
    return UNBOUNDED_RESPONSE_BYTES


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The request's client, and the hook that lets the next request on its connection start.

    Kafka handles one request per connection at a time, and clients rely on a request seeing
    the effects of every earlier one on the same connection. The server therefore starts a
    request's handler only once the previous request's effects are applied: when its handler
    returns, or earlier, when the handler calls :meth:`effects_applied` before it waits for
    something that is not an effect (an fsync, new records, the rest of a group). Only such
    waits may overlap; a handler that calls it must not change anything afterwards.
    """

    client_id: str | None
    client_host: str
    client_port: int
    principal: str = "User:ANONYMOUS"
    """Kafka's principal of the connection, ``User:<name>``: ``User:ANONYMOUS`` on a PLAINTEXT
    listener, the SASL identity or the mapped certificate subject once authenticated."""
    listener_name: str = "PLAINTEXT"
    """The name of the listener the request came in on (Kafka's ``listeners``): Metadata and
    FindCoordinator answer with that listener's advertised address."""
    on_effects_applied: Callable[[], None] = field(default=_nothing, repr=False, compare=False)
    response_room: Callable[[], int] = field(default=_unbounded, repr=False, compare=False)
    """How many more response bytes the server may hold for clients right now (per connection
    and in total). A handler that chooses its response's size (Fetch) reads it just before it
    builds the response: the value holds until the handler next awaits, because the server
    encodes and counts the response before any other task runs."""

    connection_id: str = ""
    """The client connection the request came on, unique while the broker runs (Kafka's
    connection id: local address, peer address, a counter); "" with no connection behind it.
    Share sessions opened on it end when it closes (issue 16, slice Q)."""
    # -- issue 13 (S2): acks=0 Produce errors close the connection, as in Kafka -------------
    close_connection: Callable[[], None] = field(default=_nothing, repr=False, compare=False)
    """Close the client's connection once the responses before this request are written: a
    request that gets no response (Produce with acks=0) tells its client about an error this
    way, as Kafka does, so the client refreshes its metadata."""

    def effects_applied(self) -> None:
        """Everything this request changes is changed: the next request may start."""
        self.on_effects_applied()
