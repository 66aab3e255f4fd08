"""The live views' refresh loop (``shoal top``, ``group describe --watch``) through a failure:
a refresh that fails after the first shows the outage and renews the clients instead of ending
the view; the next good refresh shows the data again (issue 17)."""

from __future__ import annotations

import io
import operator
import os
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from rich.console import Console

from shoal.cli.common import CliError
from shoal.cli.live import show_live
from shoal.cli.live_worker import ClientWorker


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
        with pytest.raises(CliError, match="process ended"):
            worker.call(os.abort)
        with pytest.raises(CliError, match="process ended"):
            worker.call(operator.add, 1, 1)  # still the dead one, until renewed
        worker.renew()
        assert worker.call(operator.add, 1, 1) == 2
        with pytest.raises(ZeroDivisionError):  # a failure inside comes back as raised
            worker.call(operator.truediv, 1, 0)
        assert worker.call(operator.add, 2, 2) == 4
    finally:
        worker.close()


def test_a_worker_that_does_not_answer_in_time_is_reported() -> None:
    worker = ClientWorker(wait_s=0.5)
    try:
        with pytest.raises(CliError, match=r"no answer within 0\.5 s"):
            worker.call(time.sleep, 60)
        worker.renew()  # the stuck one killed
        assert worker.call(operator.add, 1, 2) == 3
    finally:
        worker.close()
