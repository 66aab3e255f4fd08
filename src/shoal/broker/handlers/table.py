"""The API handler table: which function answers each API key, written out in one place.

It sits beside the supported-versions table (:data:`shoal.protocol.SUPPORTED_APIS`): whoever
builds a broker hands it this table, and it serves and advertises exactly the keys in
:data:`HANDLERS` (``restrict_to``); every other
key of the versions table is listed in :data:`UNHANDLED`, so that adding an API to either table
without the other fails a test rather than going unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from shoal.broker.broker import Handler
from shoal.broker.handlers.add_offsets_to_txn import handle_add_offsets_to_txn
from shoal.broker.handlers.add_partitions_to_txn import handle_add_partitions_to_txn
from shoal.broker.handlers.alter_client_quotas import handle_alter_client_quotas
from shoal.broker.handlers.alter_configs import handle_alter_configs
from shoal.broker.handlers.alter_partition_reassignments import handle_alter_partition_reassignments
from shoal.broker.handlers.alter_replica_log_dirs import handle_alter_replica_log_dirs
from shoal.broker.handlers.alter_share_group_offsets import handle_alter_share_group_offsets
from shoal.broker.handlers.alter_user_scram_credentials import (
    handle_alter_user_scram_credentials,
)
from shoal.broker.handlers.api_versions import handle_api_versions
from shoal.broker.handlers.consumer_group_describe import handle_consumer_group_describe
from shoal.broker.handlers.consumer_group_heartbeat import handle_consumer_group_heartbeat
from shoal.broker.handlers.create_acls import handle_create_acls
from shoal.broker.handlers.create_partitions import handle_create_partitions
from shoal.broker.handlers.create_topics import handle_create_topics
from shoal.broker.handlers.delete_acls import handle_delete_acls
from shoal.broker.handlers.delete_groups import handle_delete_groups
from shoal.broker.handlers.delete_records import handle_delete_records
from shoal.broker.handlers.delete_share_group_offsets import handle_delete_share_group_offsets
from shoal.broker.handlers.delete_topics import handle_delete_topics
from shoal.broker.handlers.describe_acls import handle_describe_acls
from shoal.broker.handlers.describe_client_quotas import handle_describe_client_quotas
from shoal.broker.handlers.describe_cluster import handle_describe_cluster
from shoal.broker.handlers.describe_configs import handle_describe_configs
from shoal.broker.handlers.describe_groups import handle_describe_groups
from shoal.broker.handlers.describe_log_dirs import handle_describe_log_dirs
from shoal.broker.handlers.describe_producers import handle_describe_producers
from shoal.broker.handlers.describe_quorum import handle_describe_quorum
from shoal.broker.handlers.describe_share_group_offsets import (
    handle_describe_share_group_offsets,
)
from shoal.broker.handlers.describe_topic_partitions import handle_describe_topic_partitions
from shoal.broker.handlers.describe_transactions import handle_describe_transactions
from shoal.broker.handlers.describe_user_scram_credentials import (
    handle_describe_user_scram_credentials,
)
from shoal.broker.handlers.elect_leaders import handle_elect_leaders
from shoal.broker.handlers.end_txn import handle_end_txn
from shoal.broker.handlers.fetch import handle_fetch
from shoal.broker.handlers.find_coordinator import handle_find_coordinator
from shoal.broker.handlers.heartbeat import handle_heartbeat
from shoal.broker.handlers.incremental_alter_configs import handle_incremental_alter_configs
from shoal.broker.handlers.init_producer_id import handle_init_producer_id
from shoal.broker.handlers.join_group import handle_join_group
from shoal.broker.handlers.leave_group import handle_leave_group
from shoal.broker.handlers.list_config_resources import handle_list_config_resources
from shoal.broker.handlers.list_groups import handle_list_groups
from shoal.broker.handlers.list_offsets import handle_list_offsets
from shoal.broker.handlers.list_partition_reassignments import handle_list_partition_reassignments
from shoal.broker.handlers.list_transactions import handle_list_transactions
from shoal.broker.handlers.metadata import handle_metadata
from shoal.broker.handlers.offset_commit import handle_offset_commit
from shoal.broker.handlers.offset_delete import handle_offset_delete
from shoal.broker.handlers.offset_fetch import handle_offset_fetch
from shoal.broker.handlers.offset_for_leader_epoch import handle_offset_for_leader_epoch
from shoal.broker.handlers.produce import handle_produce
from shoal.broker.handlers.sasl_authenticate import handle_sasl_authenticate
from shoal.broker.handlers.sasl_handshake import handle_sasl_handshake
from shoal.broker.handlers.share_acknowledge import handle_share_acknowledge
from shoal.broker.handlers.share_fetch import handle_share_fetch
from shoal.broker.handlers.share_group_describe import handle_share_group_describe
from shoal.broker.handlers.share_group_heartbeat import handle_share_group_heartbeat
from shoal.broker.handlers.sync_group import handle_sync_group
from shoal.broker.handlers.txn_offset_commit import handle_txn_offset_commit
from shoal.broker.handlers.update_features import handle_update_features
from shoal.broker.handlers.write_txn_markers import handle_write_txn_markers
from shoal.protocol import ApiKey

# Keyed by ApiKey members; typed by int because the request header's key is a plain int. A
# plain dict, read-only by its type, so that a test can wrap a handler (monkeypatch.setitem).
HANDLERS: Final[Mapping[int, Handler]] = {
    ApiKey.PRODUCE: handle_produce,
    ApiKey.FETCH: handle_fetch,
    ApiKey.LIST_OFFSETS: handle_list_offsets,
    ApiKey.METADATA: handle_metadata,
    ApiKey.OFFSET_COMMIT: handle_offset_commit,
    ApiKey.OFFSET_FETCH: handle_offset_fetch,
    ApiKey.FIND_COORDINATOR: handle_find_coordinator,
    ApiKey.JOIN_GROUP: handle_join_group,
    ApiKey.HEARTBEAT: handle_heartbeat,
    ApiKey.LEAVE_GROUP: handle_leave_group,
    ApiKey.SYNC_GROUP: handle_sync_group,
    ApiKey.DESCRIBE_GROUPS: handle_describe_groups,
    ApiKey.LIST_GROUPS: handle_list_groups,
    ApiKey.API_VERSIONS: handle_api_versions,
    ApiKey.CREATE_TOPICS: handle_create_topics,
    ApiKey.DELETE_TOPICS: handle_delete_topics,
    ApiKey.DELETE_RECORDS: handle_delete_records,
    ApiKey.INIT_PRODUCER_ID: handle_init_producer_id,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: handle_offset_for_leader_epoch,
    ApiKey.DESCRIBE_CONFIGS: handle_describe_configs,
    ApiKey.ALTER_CONFIGS: handle_alter_configs,
    ApiKey.ALTER_REPLICA_LOG_DIRS: handle_alter_replica_log_dirs,
    ApiKey.DESCRIBE_LOG_DIRS: handle_describe_log_dirs,
    ApiKey.CREATE_PARTITIONS: handle_create_partitions,
    ApiKey.DELETE_GROUPS: handle_delete_groups,
    ApiKey.ELECT_LEADERS: handle_elect_leaders,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: handle_incremental_alter_configs,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: handle_alter_partition_reassignments,
    ApiKey.LIST_PARTITION_REASSIGNMENTS: handle_list_partition_reassignments,
    ApiKey.OFFSET_DELETE: handle_offset_delete,
    ApiKey.DESCRIBE_QUORUM: handle_describe_quorum,
    ApiKey.UPDATE_FEATURES: handle_update_features,
    ApiKey.DESCRIBE_CLUSTER: handle_describe_cluster,
    ApiKey.DESCRIBE_PRODUCERS: handle_describe_producers,
    ApiKey.LIST_CONFIG_RESOURCES: handle_list_config_resources,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: handle_describe_topic_partitions,
    # SASL and SCRAM users (issue 13, SASL slice).
    ApiKey.SASL_HANDSHAKE: handle_sasl_handshake,
    ApiKey.SASL_AUTHENTICATE: handle_sasl_authenticate,
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: handle_describe_user_scram_credentials,
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: handle_alter_user_scram_credentials,
    # ACLs (issue 13, slice A): always served, SECURITY_DISABLED without an authorizer.
    ApiKey.DESCRIBE_ACLS: handle_describe_acls,
    ApiKey.CREATE_ACLS: handle_create_acls,
    ApiKey.DELETE_ACLS: handle_delete_acls,
    # Client quotas (issue 13, quotas slice).
    ApiKey.DESCRIBE_CLIENT_QUOTAS: handle_describe_client_quotas,
    ApiKey.ALTER_CLIENT_QUOTAS: handle_alter_client_quotas,
    # KIP-848 consumer groups (issue 16, slice K).
    ApiKey.CONSUMER_GROUP_HEARTBEAT: handle_consumer_group_heartbeat,
    ApiKey.CONSUMER_GROUP_DESCRIBE: handle_consumer_group_describe,
    # Transactions (issue 14, transactions slice).
    ApiKey.ADD_PARTITIONS_TO_TXN: handle_add_partitions_to_txn,
    ApiKey.END_TXN: handle_end_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: handle_add_offsets_to_txn,
    ApiKey.TXN_OFFSET_COMMIT: handle_txn_offset_commit,
    ApiKey.DESCRIBE_TRANSACTIONS: handle_describe_transactions,
    ApiKey.LIST_TRANSACTIONS: handle_list_transactions,
    # Hanging transactions: kafka-transactions.sh abort (issue 14, txn7b).
    ApiKey.WRITE_TXN_MARKERS: handle_write_txn_markers,
    # KIP-932 share groups (issue 16, slice K).
    ApiKey.SHARE_GROUP_HEARTBEAT: handle_share_group_heartbeat,
    ApiKey.SHARE_GROUP_DESCRIBE: handle_share_group_describe,
    ApiKey.SHARE_FETCH: handle_share_fetch,
    ApiKey.SHARE_ACKNOWLEDGE: handle_share_acknowledge,
    ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS: handle_describe_share_group_offsets,
    ApiKey.ALTER_SHARE_GROUP_OFFSETS: handle_alter_share_group_offsets,
    ApiKey.DELETE_SHARE_GROUP_OFFSETS: handle_delete_share_group_offsets,
}

UNHANDLED: Final[frozenset[int]] = frozenset()
"""API keys decoded by the codec (their versions are in the table for when they land) but
answered by no handler, so ApiVersions does not advertise them and a client never sends them.
Empty since share groups and transactions landed; kept so that adding an API to the versions
table without a handler fails tests/broker/handlers/test_table.py until it is listed here."""
