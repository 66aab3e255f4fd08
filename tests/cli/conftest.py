"""Fixtures for the CLI tests: an embedded broker per test, and ``cli``, which runs
``shoal.cli.main`` in this process (fast; stdin, stdout and stderr captured). Helpers the tests
import are in support.py.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest

from shoal.cli import main
from shoal.embedded import EmbeddedBroker
from tests.cli.support import Cli, Result


@pytest.fixture
def broker(shoal_broker_factory: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    """Three partitions per auto-created topic, so per-partition behaviour is visible; no
    initial rebalance delay (as the Kafka peer runs), which held back every group's first join
    by 3 s."""
    return shoal_broker_factory(num_partitions=3, group_initial_rebalance_delay_ms=0)


@pytest.fixture
def cli(
    broker: EmbeddedBroker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    # Through the environment, so that every test also checks the SHOAL_BOOTSTRAP default.
    monkeypatch.setenv("SHOAL_BOOTSTRAP", broker.bootstrap_servers)

    def run(*argv: str, stdin: bytes = b"") -> Result:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()  # drop anything printed before this command
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run
