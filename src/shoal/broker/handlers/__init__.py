"""One module per Kafka API. Importing this package registers every handler."""

from shoal.broker.handlers import (  # noqa: F401 - imported to register the handlers
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_topic_partitions,
    fetch,
    find_coordinator,
    incremental_alter_configs,
    init_producer_id,
    list_offsets,
    metadata,
    offset_for_leader_epoch,
    produce,
)
from shoal.broker.handlers.registry import HANDLERS, Handler

__all__ = ["HANDLERS", "Handler"]
