"""The live views' refresh loop (``shoal top``, ``group describe --watch``) through a failure:
a refresh that fails after the first shows the outage and renews the clients instead of ending
the view; the next good refresh shows the data again (issue 17)."""

from __future__ import annotations

import io
import operator
import os
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from rich.console import Console

from shoal.cli.common import CliError
from shoal.cli.live import show_live
from shoal.client_worker import ClientWorker, WorkerFailed, step


def piped() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False), out


def test_a_failed_refresh_shows_the_outage_renews_and_the_view_goes_on() -> None:
    answers: list[str | Exception] = [
        "reading 1",
        CliError("cannot describe group 'g': no answer within 10 s"),
        KafkaException(KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, "coordinator moving")),
        "reading 2",
    ]
    renewed: list[int] = []

    def render() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    console, out = piped()
    show_live(render, 0.001, 4, console=console, recover=lambda: renewed.append(1))
    lines = out.getvalue().splitlines()
    assert lines[0] == "reading 1"
    assert lines[1].startswith("UNAVAILABLE since ") and "(1 failed refresh," in lines[1]
    assert lines[1].endswith("no answer within 10 s; retrying with fresh clients")
    assert "(2 failed refreshes," in lines[2] and "coordinator moving" in lines[2]
    assert lines[1].split(" (")[0] == lines[2].split(" (")[0]  # the outage's start is kept
    assert lines[3] == "reading 2"
    assert len(lines) == 4
    assert renewed == [1, 1]  # fresh clients after each failed refresh


def test_the_first_refresh_failing_ends_the_command() -> None:
    """A wrong address or group name: an error, as the one-shot commands give."""

    def render() -> str:
        raise CliError("group 'nope' does not exist")

    console, _ = piped()
    with pytest.raises(CliError, match="does not exist"):
        show_live(render, 0.001, 3, console=console)


def test_a_worker_that_dies_is_reported_and_replaced() -> None:
    """librdkafka's abort (issue 4605) ends only the worker: the call says so, a new worker
    answers."""
    worker = ClientWorker(wait_s=30)
    try:
        assert worker.call(operator.add, 2, 3) == 5
        with pytest.raises(WorkerFailed, match="process ended"):
            worker.call(os.abort)
        assert worker.call(operator.add, 1, 1) == 2  # a new worker already
        with pytest.raises(ZeroDivisionError):  # a failure inside comes back as raised
            worker.call(operator.truediv, 1, 0)
        assert worker.call(operator.add, 2, 2) == 4
    finally:
        worker.close()


def test_a_worker_that_does_not_answer_in_time_is_reported() -> None:
    worker = ClientWorker(wait_s=0.5)
    try:
        with pytest.raises(WorkerFailed, match=r"no answer within 0\.5 s, during sleep"):
            worker.call(time.sleep, 60)
        assert worker.call(operator.add, 1, 2) == 3  # the stuck one killed, a new one answers
    finally:
        worker.close()


def _warm_up() -> str:
    return "imported"


def _describe_then_abort(group: str) -> None:
    step("list groups")
    step(f"describe group {group!r}")
    os.abort()


def _describe_then_hang(group: str) -> None:
    step(f"describe group {group!r}")
    time.sleep(60)


def test_a_failed_worker_is_reported_with_the_request_it_was_in() -> None:
    """The outage names the request that died or hung, not only that the worker did."""
    worker = ClientWorker(wait_s=30)
    try:
        with pytest.raises(WorkerFailed) as died:
            worker.call(_describe_then_abort, "g")
        assert "exit code -6" in str(died.value)
        assert "during describe group 'g'" in str(died.value)
        assert worker.call(_warm_up) == "imported"  # this module, in the new worker
        worker.wait_s = 2
        with pytest.raises(WorkerFailed, match="within 2 s, during describe group 'g'"):
            worker.call(_describe_then_hang, "g")
    finally:
        worker.close()


def test_a_dead_worker_shows_in_the_live_view_with_its_request() -> None:
    worker = ClientWorker(wait_s=30)
    calls = [operator.add, _describe_then_abort, operator.add]

    def render() -> str:
        function = calls.pop(0)
        return str(worker.call(function, *(("g",) if function is _describe_then_abort else (1, 2))))

    console, out = piped()
    try:
        show_live(render, 0.001, 3, console=console, recover=worker.renew)
    finally:
        worker.close()
    first, *outage, last = out.getvalue().splitlines()  # the outage wraps at 200 columns
    assert first == last == "3"
    said = " ".join(outage)
    assert said.startswith("UNAVAILABLE since ") and "during describe group 'g'" in said


def test_a_worker_failing_on_the_first_refresh_ends_the_command() -> None:
    worker = ClientWorker(wait_s=30)
    console, _ = piped()
    try:
        with pytest.raises(CliError, match="during describe group 'g'"):
            show_live(lambda: worker.call(_describe_then_abort, "g"), 0.001, 2, console=console)
    finally:
        worker.close()


def test_closing_a_worker_in_a_call_ends_it_and_starts_none() -> None:
    """The console's shutdown while a group request hangs: the call fails, no new worker."""
    worker = ClientWorker(wait_s=60)
    assert worker.call(_warm_up) == "imported"
    failures: list[Exception] = []

    def hang() -> None:
        try:
            worker.call(_describe_then_hang, "g")
        except WorkerFailed as exc:
            failures.append(exc)

    caller = threading.Thread(target=hang)
    caller.start()
    worker.close()  # waits STOP_WAIT_S at most for the call, then kills the worker
    caller.join(30)
    assert not caller.is_alive()
    assert len(failures) == 1 and "during describe group 'g'" in str(failures[0])
    assert not worker.alive()
    with pytest.raises(WorkerFailed, match="is closed"):
        worker.call(operator.add, 1, 2)
