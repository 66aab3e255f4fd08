"""A handler's answer as a client reads it: for tests that call the broker in-process.

Most handlers return kio's response classes; the hot ones (Fetch, Produce) return responses
shoal frames itself. A test that wants kio's view of either encodes the frame and decodes it
the way a client does, so it also checks the bytes a client would get.
"""

from __future__ import annotations

from typing import Any

from shoal.protocol import decode_response
from shoal.protocol.frame_writer import FramedResponse


def as_client_reads(answer: Any, api_key: int, version: int) -> Any:
    """``answer`` decoded from its wire bytes when shoal frames it, else unchanged."""
    if not isinstance(answer, FramedResponse):
        return answer
    frame = b"".join(answer.encode_frame(0, version))
    _correlation_id, body = decode_response(frame[4:], api_key, version)
    return body
