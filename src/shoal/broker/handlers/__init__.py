"""One module per Kafka API; :mod:`shoal.broker.handlers.table` says which answers which key."""

from shoal.broker.broker import Handler, HandlerResult
from shoal.broker.handlers.table import HANDLERS

__all__ = ["HANDLERS", "Handler", "HandlerResult"]
