"""franz-go's own integration tests (github.com/twmb/franz-go/pkg/kgo) against a shoal broker.

``scripts/peers/franzgo.sh`` fetches franz-go at its pinned version through the Go module proxy
and compiles pkg/kgo's tests into one binary (cached under ~/.cache/shoal/go); :func:`install`
runs it and reads where the binary is. :class:`ShoalBrokerServer` is ``shoal broker`` (the CLI a
user runs) on a free port and its own data directory. :func:`run_suite` runs the binary against
it the way franz-go's CI runs it against Apache Kafka (``KGO_SEEDS``, ``KGO_TEST_RF=1``), minus
the tests named in ``franzgo_skips.txt`` (features shoal has not built), and parses the
``-test.v`` output into per-test results.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.servers import PeerServer, PeerServerError, _exchange

REPO = Path(__file__).resolve().parents[2]
PEER_SCRIPT = REPO / "scripts" / "peers" / "franzgo.sh"
SKIPS_FILE = Path(__file__).with_name("franzgo_skips.txt")
TLS_SKIPS_FILE = Path(__file__).with_name("franzgo_tls_skips.txt")
"""Tests that cannot run over TLS whatever the broker (read with :func:`read_skips`)."""

INSTALL_TIMEOUT_S = 1200.0
"""A first install downloads franz-go and compiles its tests: minutes on two busy cores."""
SUITE_TIMEOUT = "12m"
"""go test's own -timeout: when a test hangs, the binary panics with the names of the tests
still running and every goroutine's stack, which says far more than a kill from outside."""
SUITE_KILL_AFTER_S = 14 * 60.0
"""The outer bound, past SUITE_TIMEOUT, for a binary that would not even panic."""
SUITE_PARALLEL = 8
"""``-test.parallel``: how many of the suite's parallel tests run at once (go's default is
GOMAXPROCS, 2 here). Its group and transaction tests mostly wait (rebalances, session
timeouts), so more at once overlap the waits: the TLS run took 129 s at 2 and 68 s at 8 on a
quiet 2-core machine, and the broker sees more concurrent clients."""
RECORDS_DEFAULT = 50_000
"""KGO_TEST_RECORDS: how many records the ETL tests (TestGroupETL...) produce and consume.
franz-go's default, 500,000, triples the run time (about three minutes instead of one here)
and finds nothing more; SHOAL_FRANZGO_RECORDS overrides it for a long run."""

_RESULT_LINE = re.compile(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \(")
_TEST_NAME = re.compile(r"^Test\w*$")


@dataclass(frozen=True, slots=True)
class FranzGoTests:
    """The compiled test binary of franz-go's pkg/kgo, and the package source it runs in."""

    binary: Path
    package_dir: Path


def install() -> FranzGoTests:
    """Run the peer script (idempotent: a check when already installed); fail if it fails."""
    proc = subprocess.run(
        ["bash", str(PEER_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise PeerServerError(f"{PEER_SCRIPT} failed ({proc.returncode}):\n{proc.stderr}")
    found = dict(
        line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("FRANZGO_")
    )
    try:
        return FranzGoTests(
            binary=Path(found["FRANZGO_TEST_BINARY"]),
            package_dir=Path(found["FRANZGO_PACKAGE_DIR"]),
        )
    except KeyError as exc:
        raise PeerServerError(f"{PEER_SCRIPT} did not print {exc}:\n{proc.stdout}") from None


def read_skips(path: Path = SKIPS_FILE) -> dict[str, str]:
    """The skip list: top-level test name -> why shoal cannot pass it yet.

    A line without a reason, a name that is not a top-level Go test name, or a name listed
    twice is refused: the list is reviewed line by line, and each line must say why.
    """
    skips: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not _TEST_NAME.match(name) or not reason.strip():
            raise ValueError(f"{path}:{number}: want 'TestName  reason', got {raw!r}")
        if name in skips:
            raise ValueError(f"{path}:{number}: {name} is listed twice")
        skips[name] = reason.strip()
    return skips


def name_pattern(names: Sequence[str]) -> str:
    """A -test.run/-test.skip pattern matching exactly these top-level tests and their subtests."""
    return "^(" + "|".join(re.escape(name) for name in sorted(names)) + ")$"


def list_tests(tests: FranzGoTests) -> set[str]:
    """Every top-level test in the binary (its -test.list)."""
    proc = subprocess.run(
        [str(tests.binary), "-test.list", "."],
        cwd=tests.package_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {line for line in proc.stdout.splitlines() if line.startswith("Test")}


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of a TLS run: the broker's key and certificate chain, and the CA that signed
    it (which franz-go's tests trust through ``KGO_TEST_TLS=ca:<path>``)."""

    keystore: Path
    ca: Path

    def kgo_test_tls(self) -> str:
        return f"ca:{self.ca}"


class ShoalBrokerServer(PeerServer):
    """``shoal broker`` in a child process, on a free port, with its own data directory; with
    ``tls``, its one listener is SSL."""

    name = "shoal"
    scheme = "kafka"
    start_timeout_s = 60.0

    def __init__(self, data_dir: Path, port: int | None = None, *, tls: TlsFiles | None = None):
        super().__init__(data_dir, port)
        self.tls = tls

    def _command(self) -> list[str]:
        if self.tls is None:
            listener = ["--kafka-listen", f"{self.host}:{self.port}"]
        else:
            listener = [
                "--listeners", f"SSL://{self.host}:{self.port}",
                "--ssl-keystore-location", str(self.tls.keystore),
            ]  # fmt: skip
        return [
            sys.executable, "-m", "shoal.cli", "broker",
            "--data-dir", str(self.data_dir / "data"),
            *listener,
            # The HTTP face is not under test; port 0 keeps it off every other run's port.
            "--http-listen", f"{self.host}:0",
            "--log-level", "warning",
        ]  # fmt: skip

    def _environment(self) -> dict[str, str]:
        # As franz-go's CI runs Kafka (the apache/kafka image): its server.properties sets
        # group.initial.rebalance.delay.ms=0 (Kafka's built-in 3 s would only make each of the
        # suite's many groups wait), and topics are auto-created (Kafka's default, which tests
        # that consume a topic nobody created rely on).
        return {
            **os.environ,
            "SHOAL_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            "SHOAL_AUTO_CREATE_TOPICS": "true",
        }

    def _probe(self) -> bool:
        # ApiVersions v0: a broker that answers it is past start-up and serves requests.
        correlation_id = 7
        body = struct.pack(">hhih", 18, 0, correlation_id, -1)
        request = struct.pack(">i", len(body)) + body
        if self.tls is None:
            reply = _exchange(self.host, self.port, request)
        else:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            with (
                socket.create_connection((self.host, self.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as sock,
            ):
                sock.sendall(request)
                reply = sock.recv(4096)
        return len(reply) >= 8 and struct.unpack_from(">i", reply, 4)[0] == correlation_id

    @property
    def seeds(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class SuiteResult:
    """What one run of the suite reported, test by test (subtests as ``Parent/sub``)."""

    returncode: int
    log_path: Path
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)
    """Top-level tests that started (``=== RUN``)."""

    def failure_report(self, max_chars_per_test: int = 4_000) -> str:
        """Each failed test with what it logged; a timeout panic with the tests it names."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        sections = [f"franz-go's suite exited with {self.returncode}; full log: {self.log_path}"]
        for name in self.failed:
            output = "\n".join(output_of(lines, name))
            sections.append(f"--- FAIL: {name}\n{output[-max_chars_per_test:]}")
        for number, line in enumerate(lines):
            if line.startswith("panic: "):
                # The panic line, then "running tests:" and their names (the hung ones), up to
                # the blank line before the goroutine dump.
                end = lines.index("", number) if "" in lines[number:] else len(lines)
                sections.append("\n".join(lines[number:end]))
                break
        if len(sections) == 1:
            sections.append("no test reported FAIL; the end of the log:\n" + "\n".join(lines[-60:]))
        return "\n".join(sections)


_OUTPUT_HEADER = re.compile(r"^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)")


def output_of(lines: list[str], name: str) -> list[str]:
    """The lines a test (or one of its subtests) logged in a -test.v log of parallel tests.

    With -test.v each test's t.Log lines are printed as they happen, under an ``=== NAME``
    (or RUN, CONT) header whenever the output switches to another test.
    """
    output: list[str] = []
    current = ""
    for line in lines:
        header = _OUTPUT_HEADER.match(line)
        if header is not None:
            current = header.group(1)
            continue
        if _RESULT_LINE.match(line) is not None:
            continue
        if current == name or current.startswith(name + "/"):
            output.append(line)
    return output


def run_suite(
    tests: FranzGoTests,
    seeds: str,
    log_path: Path,
    records: int,
    *,
    skip: Sequence[str] = (),
    only: Sequence[str] = (),
    tls: TlsFiles | None = None,
) -> SuiteResult:
    """Run the binary's tests against the broker at ``seeds``: all of them but ``skip``, or
    only those named in ``only``; over TLS (``KGO_TEST_TLS``) with ``tls``."""
    env = {
        **os.environ,
        "KGO_SEEDS": seeds,
        # One broker: topics with replication factor 1 (franz-go's default is 3).
        "KGO_TEST_RF": "1",
        "KGO_TEST_RECORDS": str(records),
        # franz-go's INFO logging of every rebalance is megabytes; results and failures are
        # reported by the testing package either way.
        "KGO_LOG_LEVEL": "none",
    }
    if tls is not None:
        env["KGO_TEST_TLS"] = tls.kgo_test_tls()
    args = [str(tests.binary), "-test.v", "-test.timeout", SUITE_TIMEOUT]
    args += ["-test.parallel", str(SUITE_PARALLEL)]
    if skip:
        args += ["-test.skip", name_pattern(skip)]
    if only:
        args += ["-test.run", name_pattern(only)]
    with log_path.open("wb") as log:
        proc = subprocess.run(
            args,
            cwd=tests.package_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=SUITE_KILL_AFTER_S,
            check=False,
        )
    result = SuiteResult(returncode=proc.returncode, log_path=log_path)
    by_outcome = {"PASS": result.passed, "FAIL": result.failed, "SKIP": result.skipped}
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("=== RUN   ") and "/" not in line:
            result.ran.add(line.removeprefix("=== RUN   ").strip())
        match = _RESULT_LINE.match(line)
        if match is None:
            continue
        outcome, name = match.groups()
        by_outcome[outcome].append(name)
    return result
