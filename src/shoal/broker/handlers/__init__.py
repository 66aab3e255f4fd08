"""One module per Kafka API. Importing this package registers every handler."""

from shoal.broker.handlers import (  # noqa: F401 - imported to register the handlers
    api_versions,
    fetch,
    find_coordinator,
    list_offsets,
    metadata,
    produce,
)
from shoal.broker.handlers.registry import HANDLERS, Handler

__all__ = ["HANDLERS", "Handler"]
