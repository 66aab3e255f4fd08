"""shoal: a single-node Kafka-protocol event-streaming platform and a framework for services."""

__version__ = "0.1.0"
