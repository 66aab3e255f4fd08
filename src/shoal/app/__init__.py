"""The shoal framework: resilient event-driven services (see :class:`App`)."""

from shoal.app.app import App, Subscriber
from shoal.app.dlq import dlq_topic, redrive
from shoal.app.message import Message
from shoal.app.retry import Retry
from shoal.app.transport import Transport, TransportConsumer, TransportError

__all__ = [
    "App",
    "Message",
    "Retry",
    "Subscriber",
    "Transport",
    "TransportConsumer",
    "TransportError",
    "dlq_topic",
    "redrive",
]
