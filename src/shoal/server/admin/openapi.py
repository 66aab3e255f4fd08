"""The OpenAPI 3.1 document of the admin API, served at ``/api/v1/openapi.json``.

Written out by hand next to the routes; a test checks that it names exactly the routes served
and that it is a valid OpenAPI document.
"""

from __future__ import annotations

from typing import Any, Final

from shoal.server.admin.access import CSRF_HEADER

_ERROR: Final = {"$ref": "#/components/schemas/Error"}
_STR: Final = {"type": "string"}
_INT: Final = {"type": "integer"}
_NULLABLE_INT: Final = {"type": ["integer", "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Bad input; nothing changed",
        403: "Not authorized, the CSRF header is missing, or another site sent it",
        404: "No such topic, partition or group",
        409: "Conflicts with the current state (exists already, group active)",
        415: "The body is not application/json",
        503: "The broker is still starting",
    }
    return {str(s): _json(_ERROR, reasons[s]) for s in (*statuses, 503)}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_CSRF: Final = {"$ref": "#/components/parameters/CsrfHeader"}
_TOPIC: Final = {"$ref": "#/components/parameters/Topic"}
_GROUP: Final = {"$ref": "#/components/parameters/Group"}

_BYTES: Final = {
    "type": ["object", "null"],
    "description": "UTF-8 text when the bytes are valid UTF-8, else base64",
    "required": ["encoding", "data"],
    "properties": {"encoding": {"type": "string", "enum": ["utf-8", "base64"]}, "data": _STR},
}
_BYTES_IN: Final = {
    "description": "null, a string (sent as UTF-8), or {encoding, data}",
    "oneOf": [{"type": "null"}, _STR, _BYTES],
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_BURROW: Final = {
    "type": ["object", "null"],
    "description": "Burrow's consumer status (null: no committed offset to judge)",
    "properties": {
        "group": {"type": "string", "enum": ["OK", "WARNING", "ERROR"]},
        "worst": {"$ref": "#/components/schemas/PartitionStatus"},
        "reason": _STR,
    },
}

_SCHEMAS: Final[dict[str, Any]] = {
    "PartitionStatus": {
        "type": "string",
        "description": "Burrow's partition status",
        "enum": ["OK", "WARNING", "STOP", "STALL", "REWIND"],
    },
    "Message": {
        "type": "object",
        "properties": {
            "partition": _INT,
            "offset": _INT,
            "timestamp": _INT,
            "key": _BYTES,
            "value": _BYTES,
            "headers": {
                "type": "array",
                "items": {"type": "object", "properties": {"key": _STR, "value": _BYTES}},
            },
        },
    },
    "Broker": {
        "type": "object",
        "properties": {
            "node_id": _INT,
            "version": _STR,
            "topics": _INT,
            "partitions": _INT,
            "disk": {
                "type": ["object", "null"],
                "properties": {"capacity_bytes": _INT, "free_bytes": _INT},
            },
            "traffic": {"$ref": "#/components/schemas/Traffic"},
            "topic_traffic": {
                "type": "array",
                "items": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Traffic"},
                        {"type": "object", "properties": {"topic": _STR}},
                    ]
                },
            },
        },
    },
    "Traffic": {
        "type": "object",
        "properties": {
            "bytes_in": _INT,
            "records_in": _INT,
            "bytes_out": _INT,
            "records_out": _INT,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": _STR, "message": _STR},
    },
    "Partition": {
        "type": "object",
        "properties": {
            "partition": _INT,
            "low_watermark": _NULLABLE_INT,
            "high_watermark": _NULLABLE_INT,
            "size_bytes": _NULLABLE_INT,
            "leader": _NULLABLE_INT,
            "replicas": {"type": "array", "items": _INT},
            "isr": {"type": "array", "items": _INT},
        },
    },
    "Topic": {
        "type": "object",
        "properties": {
            "name": _STR,
            "topic_id": _STR,
            "internal": {"type": "boolean"},
            "partitions": {"type": "array", "items": {"$ref": "#/components/schemas/Partition"}},
            "configs": {
                "type": ["array", "null"],
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _STR,
                        "value": {"type": ["string", "null"]},
                        "source": _STR,
                        "read_only": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "GroupSummary": {
        "type": "object",
        "properties": {
            "group_id": _STR,
            "type": {"type": "string", "enum": ["classic", "consumer"]},
            "state": _STR,
            "protocol_type": {"type": ["string", "null"]},
            "members": _INT,
            "status": _BURROW,
        },
    },
    "Group": {
        "type": "object",
        "properties": {
            "group_id": _STR,
            "type": {"type": "string", "enum": ["classic", "consumer"]},
            "state": _STR,
            "protocol_type": {"type": ["string", "null"]},
            "protocol": {"type": ["string", "null"]},
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "member_id": _STR,
                        "group_instance_id": {"type": ["string", "null"]},
                        "client_id": _STR,
                        "client_host": _STR,
                    },
                },
            },
            "status": _BURROW,
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "topic": _STR,
                        "partition": _INT,
                        "committed_offset": _INT,
                        "metadata": _STR,
                        "high_watermark": _NULLABLE_INT,
                        "lag": _NULLABLE_INT,
                        "lag_seconds": {"type": ["number", "null"]},
                        "status": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/PartitionStatus"},
                                {"type": "null"},
                            ]
                        },
                        "status_reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}


def openapi_document() -> dict[str, Any]:
    topic_ref = {"$ref": "#/components/schemas/Topic"}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "shoal admin API",
            "version": "1",
            "description": "Topics and consumer groups of a shoal broker. State-changing "
            f"requests need the {CSRF_HEADER} header and a JSON body.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/topics": {
                "get": {
                    "operationId": "listTopics",
                    "summary": "Topics the caller may describe, with partitions",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"topics": {"type": "array", "items": topic_ref}},
                            },
                            "The topics",
                        ),
                        **_errors(),
                    },
                },
                "post": {
                    "operationId": "createTopic",
                    "summary": "Create a topic",
                    "parameters": [_CSRF],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": _STR,
                                "partitions": _INT,
                                "configs": {
                                    "type": "object",
                                    "additionalProperties": _STR,
                                },
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(topic_ref, "Created"),
                        **_errors(400, 403, 409, 415),
                    },
                },
            },
            "/topics/{topic}": {
                "get": {
                    "operationId": "describeTopic",
                    "summary": "A topic with its configs and their sources",
                    "parameters": [_TOPIC],
                    "responses": {"200": _json(topic_ref, "The topic"), **_errors(400, 403, 404)},
                },
                "delete": {
                    "operationId": "deleteTopic",
                    "summary": "Delete a topic and its data",
                    "parameters": [
                        _TOPIC,
                        _CSRF,
                        {
                            "name": "confirm",
                            "in": "query",
                            "required": True,
                            "description": "The topic's name again",
                            "schema": _STR,
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"deleted": _STR}}, "Deleted"
                        ),
                        **_errors(400, 403, 404),
                    },
                },
            },
            "/topics/{topic}/configs": {
                "patch": {
                    "operationId": "alterTopicConfigs",
                    "summary": "Set, delete, append to or subtract from topic configs "
                    "(IncrementalAlterConfigs' operations)",
                    "parameters": [_TOPIC, _CSRF],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "properties": {
                                "set": {"type": "object", "additionalProperties": _STR},
                                "delete": {"type": "array", "items": _STR},
                                "append": {"type": "object", "additionalProperties": _STR},
                                "subtract": {"type": "object", "additionalProperties": _STR},
                            },
                        }
                    ),
                    "responses": {
                        "200": _json(topic_ref, "The topic as it is now"),
                        **_errors(400, 403, 404, 415),
                    },
                },
            },
            "/topics/{topic}/messages": {
                "get": {
                    "operationId": "browseMessages",
                    "summary": "One page of a partition's (or every partition's) messages",
                    "parameters": [
                        _TOPIC,
                        _query("partition", _INT, "One partition; all when absent"),
                        _query(
                            "from",
                            {"type": "string", "enum": ["oldest", "newest", "offset", "timestamp"]},
                            "Where to start; newest: the last `limit` messages of each partition",
                        ),
                        _query("offset", _INT, "With from=offset"),
                        _query("timestamp", _INT, "With from=timestamp (ms since the epoch)"),
                        _query("cursor", _STR, "The previous page's next_cursor (wins over from)"),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size"
                        ),
                        _query("key", _STR, "Substring the key must contain"),
                        _query("value", _STR, "Substring the value must contain"),
                        _query("header", _STR, "Substring of some header's key or value"),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "messages": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Message"},
                                    },
                                    "next_cursor": _STR,
                                    "end_offsets": {"type": "object", "additionalProperties": _INT},
                                },
                            },
                            "The page",
                        ),
                        **_errors(400, 403, 404),
                    },
                },
                "post": {
                    "operationId": "produceMessage",
                    "summary": "Produce one message (acks=all)",
                    "parameters": [_TOPIC, _CSRF],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "properties": {
                                "partition": _INT,
                                "key": _BYTES_IN,
                                "value": _BYTES_IN,
                                "headers": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["key"],
                                        "properties": {"key": _STR, "value": _BYTES_IN},
                                    },
                                },
                                "redrive_from": {
                                    "type": "string",
                                    "description": (
                                        "The DLQ this record is redriven from: the topic must "
                                        "then exist, differ from it and not be internal (400 "
                                        "redrive_target_refused)"
                                    ),
                                },
                            },
                        }
                    ),
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "properties": {"topic": _STR, "partition": _INT, "offset": _INT},
                            },
                            "Written and on disk",
                        ),
                        **_errors(400, 403, 404, 415),
                    },
                },
            },
            "/topics/{topic}/messages/export": {
                "get": {
                    "operationId": "exportMessages",
                    "summary": "Every message the browser's query matches, streamed as a "
                    "JSON array or CSV download (up to each partition's end when it began; "
                    "100,000 messages at most)",
                    "parameters": [
                        _TOPIC,
                        _query("format", {"type": "string", "enum": ["json", "csv"]}, "json"),
                        _query("partition", _INT, "One partition; all when absent"),
                        _query(
                            "from",
                            {"type": "string", "enum": ["oldest", "newest", "offset", "timestamp"]},
                            "Where to start",
                        ),
                        _query("offset", _INT, "With from=offset"),
                        _query("timestamp", _INT, "With from=timestamp (ms since the epoch)"),
                        _query("key", _STR, "Substring the key must contain"),
                        _query("value", _STR, "Substring the value must contain"),
                        _query("header", _STR, "Substring of some header's key or value"),
                    ],
                    "responses": {
                        "200": {
                            "description": "The download",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Message"},
                                    }
                                },
                                "text/csv": {"schema": _STR},
                            },
                        },
                        **_errors(400, 403, 404),
                    },
                },
            },
            "/groups": {
                "get": {
                    "operationId": "listGroups",
                    "summary": "Consumer groups the caller may describe",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "groups": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/GroupSummary"},
                                    }
                                },
                            },
                            "The groups",
                        ),
                        **_errors(),
                    },
                },
            },
            "/groups/{group}": {
                "get": {
                    "operationId": "describeGroup",
                    "summary": "A group's members, committed offsets and lag",
                    "parameters": [_GROUP],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Group"}, "The group"),
                        **_errors(403, 404),
                    },
                },
            },
            "/groups/{group}/offsets/reset": {
                "post": {
                    "operationId": "resetGroupOffsets",
                    "summary": "Reset a group's offsets on a topic (a dry run unless dry_run "
                    "is false)",
                    "parameters": [_GROUP, _CSRF],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "required": ["topic", "to"],
                            "properties": {
                                "topic": _STR,
                                "partitions": {"type": "array", "items": _INT},
                                "to": {
                                    "type": "string",
                                    "enum": ["earliest", "latest", "timestamp", "offset"],
                                },
                                "value": {
                                    "type": "integer",
                                    "description": "Milliseconds since the epoch (timestamp) "
                                    "or the offset (offset)",
                                },
                                "dry_run": {"type": "boolean", "default": True},
                            },
                        }
                    ),
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "group_id": _STR,
                                    "dry_run": {"type": "boolean"},
                                    "partitions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "topic": _STR,
                                                "partition": _INT,
                                                "current_offset": _NULLABLE_INT,
                                                "new_offset": _INT,
                                            },
                                        },
                                    },
                                },
                            },
                            "The new offsets (committed unless a dry run)",
                        ),
                        **_errors(400, 403, 404, 409, 415),
                    },
                },
            },
            "/broker": {
                "get": {
                    "operationId": "brokerOverview",
                    "summary": "The broker: node, version, disk, and traffic counters (totals "
                    "since start; a rate is the difference of two readings)",
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Broker"}, "The broker"),
                        **_errors(),
                    },
                },
            },
            "/acls": {
                "get": {
                    "operationId": "listAcls",
                    "summary": "Every ACL binding (needs Describe on the cluster)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "authorizer": {"type": "boolean"},
                                    "acls": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                key: _STR
                                                for key in (
                                                    "resource_type",
                                                    "resource_name",
                                                    "pattern_type",
                                                    "principal",
                                                    "host",
                                                    "operation",
                                                    "permission_type",
                                                )
                                            },
                                        },
                                    },
                                },
                            },
                            "The ACLs; authorizer is false when none is configured",
                        ),
                        **_errors(403),
                    },
                },
            },
            "/users": {
                "get": {
                    "operationId": "listUsers",
                    "summary": "SCRAM users with their mechanisms and iterations (needs Describe "
                    "on the cluster; no credential material)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "users": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "user": _STR,
                                                "mechanisms": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "properties": {
                                                            "mechanism": _STR,
                                                            "iterations": _INT,
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    }
                                },
                            },
                            "The users",
                        ),
                        **_errors(403),
                    },
                },
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "parameters": {
                "Topic": {"name": "topic", "in": "path", "required": True, "schema": _STR},
                "Group": {"name": "group", "in": "path", "required": True, "schema": _STR},
                "CsrfHeader": {
                    "name": CSRF_HEADER,
                    "in": "header",
                    "required": True,
                    "description": "Any non-empty value; proves the request is not cross-site",
                    "schema": _STR,
                },
            },
        },
    }
    document["paths"]["/acls"].update(_ACL_CHANGES)
    document["paths"]["/users/{user}"] = _USER_CHANGES
    document["components"]["schemas"]["Acl"] = _ACL
    return document


_ACL: Final = {
    "type": "object",
    "required": ["resource_type", "resource_name", "principal", "operation"],
    "properties": {
        "resource_type": {
            "type": "string",
            "enum": ["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"],
        },
        "resource_name": _STR,
        "pattern_type": {"type": "string", "enum": ["LITERAL", "PREFIXED"], "default": "LITERAL"},
        "principal": {**_STR, "description": "e.g. User:alice"},
        "host": {**_STR, "default": "*"},
        "operation": _STR,
        "permission_type": {"type": "string", "enum": ["ALLOW", "DENY"], "default": "ALLOW"},
    },
}
_ACL_REF: Final = {"$ref": "#/components/schemas/Acl"}
_ACL_CHANGES: Final = {
    "post": {
        "operationId": "createAcl",
        "summary": "Add one ACL (as CreateAcls: needs Alter on the cluster)",
        "parameters": [_CSRF],
        "requestBody": _body(_ACL_REF),
        "responses": {
            "201": _json({"type": "object", "properties": {"acl": _ACL_REF}}, "Added"),
            **_errors(400, 403, 409, 415),
        },
    },
    "delete": {
        "operationId": "deleteAcl",
        "summary": "Remove exactly the ACL in the body (as DeleteAcls: needs Alter on the cluster)",
        "parameters": [_CSRF],
        "requestBody": _body(_ACL_REF),
        "responses": {
            "200": _json(
                {"type": "object", "properties": {"deleted": {"type": "array", "items": _ACL_REF}}},
                "Removed",
            ),
            **_errors(400, 403, 404, 409, 415),
        },
    },
}
_USER: Final = {"name": "user", "in": "path", "required": True, "schema": _STR}
_MECHANISM: Final = {"type": "string", "enum": ["SCRAM-SHA-256", "SCRAM-SHA-512"]}
_USER_CHANGES: Final = {
    "put": {
        "operationId": "setUserCredential",
        "summary": "Add or replace a user's SCRAM credential for one mechanism (as "
        "AlterUserScramCredentials: needs Alter on the cluster); the password is kept only "
        "as its salted credential",
        "parameters": [_USER, _CSRF],
        "requestBody": _body(
            {
                "type": "object",
                "required": ["mechanism", "password"],
                "properties": {
                    "mechanism": _MECHANISM,
                    "password": _STR,
                    "iterations": {"type": "integer", "minimum": 4096, "maximum": 16384},
                },
            }
        ),
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {"user": _STR, "mechanism": _STR, "iterations": _INT},
                },
                "Set",
            ),
            **_errors(400, 403, 415),
        },
    },
    "delete": {
        "operationId": "deleteUserCredential",
        "summary": "Delete a user's SCRAM credential for one mechanism (needs Alter on the "
        "cluster)",
        "parameters": [
            _USER,
            _CSRF,
            {"name": "mechanism", "in": "query", "required": True, "schema": _MECHANISM},
        ],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "user": _STR,
                        "mechanism": _STR,
                        "deleted": {"type": "boolean"},
                    },
                },
                "Deleted",
            ),
            **_errors(400, 403, 404),
        },
    },
}
