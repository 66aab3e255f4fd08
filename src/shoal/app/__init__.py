"""The shoal framework: resilient event-driven services (see :class:`App`)."""

from shoal.app.app import App
from shoal.app.message import Message
from shoal.app.redrive import redrive
from shoal.app.resilience.breaker import Breaker
from shoal.app.resilience.dlq import dlq_topic
from shoal.app.resilience.retry import Retry
from shoal.app.subscriber import Publisher, Subscriber
from shoal.app.transport import Transport, TransportConsumer, TransportError

__all__ = [
    "App",
    "Breaker",
    "Message",
    "Publisher",
    "Retry",
    "Subscriber",
    "Transport",
    "TransportConsumer",
    "TransportError",
    "dlq_topic",
    "redrive",
]
