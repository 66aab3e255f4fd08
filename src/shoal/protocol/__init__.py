"""Sans-IO Kafka protocol codec (framing, headers, messages, error codes, API versions)."""
