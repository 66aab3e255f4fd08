"""The peer fixtures (``kafka_peer``, ``redis_server``, ``rabbitmq_server``, ``nats_server``) are
defined in the root ``tests/conftest.py``, so the whole session shares one of each."""
