"""shoal: a single-node Kafka-protocol event-streaming platform and a framework for services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from shoal.app import App, Breaker, Message, Retry, redrive

__all__ = ["App", "Breaker", "Message", "Retry", "__version__", "redrive"]

_LAZY = {"App", "Breaker", "Message", "Retry", "redrive"}


def __getattr__(name: str) -> Any:
    # The framework is imported on first use, so that `import shoal` (the broker, the CLI)
    # stays light and never loads the client side.
    if name in _LAZY:
        import shoal.app

        return getattr(shoal.app, name)
    raise AttributeError(f"module 'shoal' has no attribute {name!r}")
