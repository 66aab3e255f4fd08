"""One module per Kafka API; :mod:`shoal.broker.handlers.table` says which answers which key."""

from shoal.broker.handlers.table import HANDLERS, Handler, HandlerResult

__all__ = ["HANDLERS", "Handler", "HandlerResult"]
