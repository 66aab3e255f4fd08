"""Payload formats: the built-in JSON serde (:mod:`.payload`), the :class:`Codec` seam for
others, and the schema-registry codecs (:mod:`.schemas`: Avro, JSON Schema, Protobuf in
Confluent's wire format)."""
