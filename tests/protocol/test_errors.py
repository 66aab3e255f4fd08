"""The error-code table and the exception hierarchy of shoal.protocol."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode as KioErrorCode

from shoal.protocol import (
    DecodeError,
    EncodeError,
    ErrorCode,
    FrameError,
    InvalidRequestError,
    InvalidResponseError,
    ProtocolError,
    UnsupportedVersionError,
    error_code_from_name,
    error_code_from_value,
)
from shoal.records import errors as records_errors


def test_every_code_from_minus_one_to_the_maximum_is_present() -> None:
    codes = [int(code) for code in ErrorCode]
    assert codes == list(range(-1, 134))


def test_names_and_retriable_flags_agree_with_kio() -> None:
    # kio generates its table from Kafka's protocol documentation; ours was transcribed from
    # Kafka's Errors enum. Two independent sources agreeing guards against typos in either.
    ours = {int(code): (code.name, code.retriable) for code in ErrorCode}
    theirs = {int(code): (code.name.upper(), code.retriable) for code in KioErrorCode}
    assert ours == theirs


@pytest.mark.parametrize(
    ("code", "name", "retriable", "message"),
    [
        (
            -1,
            "UNKNOWN_SERVER_ERROR",
            False,
            "The server experienced an unexpected error when processing the request.",
        ),
        (0, "NONE", False, ""),
        (3, "UNKNOWN_TOPIC_OR_PARTITION", True, "This server does not host this topic-partition."),
        (
            10,
            "MESSAGE_TOO_LARGE",
            False,
            "The request included a message larger than the max "
            "message size the server will accept.",
        ),
        (16, "NOT_COORDINATOR", True, "This is not the correct coordinator."),
        (35, "UNSUPPORTED_VERSION", False, "The version of API is not supported."),
        (
            87,
            "INVALID_RECORD",
            False,
            "This record has failed the validation on broker and hence will be rejected.",
        ),
        (133, "SHARE_SESSION_LIMIT_REACHED", True, "The limit of share sessions has been reached."),
    ],
)
def test_known_entries(code: int, name: str, retriable: bool, message: str) -> None:
    entry = error_code_from_value(code)
    assert entry is error_code_from_name(name)
    assert (int(entry), entry.name, entry.retriable, entry.message) == (
        code,
        name,
        retriable,
        message,
    )


def test_every_error_but_none_has_a_message() -> None:
    assert [code for code in ErrorCode if not code.message] == [ErrorCode.NONE]


def test_unknown_lookups_raise_key_error() -> None:
    with pytest.raises(KeyError, match="no Kafka error code 134"):
        error_code_from_value(134)
    with pytest.raises(KeyError, match="not_coordinator"):
        error_code_from_name("not_coordinator")


def test_codes_are_ints_on_the_wire() -> None:
    assert ErrorCode.NOT_COORDINATOR == 16
    assert ErrorCode(16) is ErrorCode.NOT_COORDINATOR
    assert KioErrorCode(ErrorCode.NOT_COORDINATOR) is KioErrorCode.not_coordinator


@pytest.mark.parametrize(
    "error_class",
    [
        records_errors.RecordsError,
        records_errors.CorruptBatchError,
        records_errors.InvalidRecordError,
        records_errors.BatchTooLargeError,
        records_errors.UnsupportedCompressionError,
    ],
)
def test_records_layer_codes_match_the_table(error_class: type) -> None:
    # shoal.records repeats the codes it needs because it sits below this layer.
    entry = error_code_from_value(error_class.kafka_error_code)
    assert entry.name == error_class.kafka_error_name


def test_hierarchy_and_connection_handling() -> None:
    for cls in (FrameError, DecodeError, EncodeError, UnsupportedVersionError):
        assert issubclass(cls, ProtocolError)
    assert issubclass(InvalidRequestError, DecodeError)
    assert issubclass(InvalidResponseError, DecodeError)
    assert FrameError("x").closes_connection
    assert InvalidRequestError("x", correlation_id=4).closes_connection
    assert EncodeError("x").closes_connection
    answerable = UnsupportedVersionError(
        "x", api_key=18, api_version=9, correlation_id=1, closes_connection=False
    )
    assert not answerable.closes_connection
    assert answerable.error_code is ErrorCode.UNSUPPORTED_VERSION
    assert InvalidRequestError("x").error_code is ErrorCode.INVALID_REQUEST
