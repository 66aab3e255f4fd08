"""kafka-python's record batch code, imported for use as an independent oracle.

kafka-python 3 reads its protocol schemas with ``importlib.resources.read_text`` when the
package is imported, which warns DeprecationWarning on Python 3.11+. The tests turn warnings
into errors, so the import (only the import) runs with that one warning category silenced.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import codec as kafka_codec  # type: ignore[import-untyped]
    from kafka.record.default_records import (  # type: ignore[import-untyped]
        DefaultRecordBatch,
        DefaultRecordBatchBuilder,
    )
    from kafka.record.util import decode_varint, encode_varint  # type: ignore[import-untyped]

__all__ = [
    "DefaultRecordBatch",
    "DefaultRecordBatchBuilder",
    "decode_varint",
    "encode_varint",
    "kafka_codec",
]
