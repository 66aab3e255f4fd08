"""One module per Kafka API. Importing this package registers every handler."""

from shoal.broker.handlers import (  # noqa: F401 - imported to register the handlers
    alter_configs,
    api_versions,
    create_partitions,
    create_topics,
    delete_groups,
    delete_records,
    delete_topics,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_topic_partitions,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sync_group,
)
from shoal.broker.handlers.registry import HANDLERS, Handler

__all__ = ["HANDLERS", "Handler"]
