"""A Confluent-compatible schema registry: a Kafka *client* that keeps its state in the
compacted ``_schemas`` topic, so it runs inside shoal's broker and against Apache Kafka alike.
It imports nothing from shoal's broker, server or storage layers."""

from shoal.registry.api import build_registry_app
from shoal.registry.log import KafkaSchemaLog, MemorySchemaLog, SchemaLog
from shoal.registry.service import RegistryService
from shoal.registry.standalone import run_registry, serve_registry

__all__ = [
    "KafkaSchemaLog",
    "MemorySchemaLog",
    "RegistryService",
    "SchemaLog",
    "build_registry_app",
    "run_registry",
    "serve_registry",
]
