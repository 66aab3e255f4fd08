"""``shoal console`` against the 3-broker Kafka cluster (issue 21): its overview lists the three
brokers, a topic's partitions show their leaders, replicas and in-sync replicas spread over
them, a group's lag, browsing, producing and a DLQ redrive work; a broker killed shows as down
while the console keeps answering, and as up again once it is back, in the API and in a real
browser's overview (Debian's chromium through Playwright, as tests/server/test_console_browser).

The same kill (the group's coordinator) is watched by ``shoal top`` and ``shoal group describe
--watch`` running as a user runs them (issue 17): neither ends nor freezes, each refresh either
shows the group or says it is unavailable, and both show the group again, with the lag counted
from the new coordinator, within a bound."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Final

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from playwright.sync_api import Page, expect, sync_playwright

from shoal.protocol import ApiKey
from tests.peers.kafka_cluster import NODES, KafkaCluster
from tests.server.wire import WireClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CSRF: Final = {"X-Shoal-Admin": "1"}
TOPIC: Final = "console-orders"
DLQ: Final = f"{TOPIC}.dlq"
PARTITIONS: Final = 3
KEYS: Final = [f"order-{i}" for i in range(6)]
GROUP: Final = "console-auditors"
REQUEST_TIMEOUT_S: Final = 60.0
"""One console request: a produce while the cluster elects new leaders can take seconds."""
CHANGE_TIMEOUT_S: Final = 120.0
"""Bound on a broker being seen down (its session timing out) or up again (a JVM restarting
on 2 shared cores): a bound on a hang, not a timing."""
POLL_S: Final = 0.25
CHROMIUM: Final = "/usr/bin/chromium"
"""Debian's chromium (scripts/peers/chromium.sh installs it); Playwright never downloads one."""
LIVE_INTERVAL_S: Final = "1"
"""``--interval`` of the live CLI views: a refresh a second, so the kill falls between two."""
LIVE_TIMEOUT_S: Final = "5"
"""``--timeout`` of the live CLI views: a request to the dead coordinator fails (and the view
retries with a new worker) after this, not the default 10 s (CI time)."""


@contextmanager
def shoal_console(bootstrap: str) -> Iterator[httpx.Client]:
    """``shoal console --bootstrap <cluster>`` as a user starts it, in its own process."""
    command = [sys.executable, "-m", "shoal.cli", "console", "--bootstrap", bootstrap]
    with subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()  # printed once the port is bound
            assert line.startswith("shoal console on http://127.0.0.1:"), line
            url = line.split(" on ")[1].strip()
            with httpx.Client(
                base_url=url + "api/v1", headers=CSRF, timeout=REQUEST_TIMEOUT_S
            ) as client:
                yield client
            assert process.poll() is None, "the console exited"
        finally:
            process.terminate()
            process.wait(REQUEST_TIMEOUT_S)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def until(condition: Callable[[], bool], what: str, detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}{detail()}"
        time.sleep(POLL_S)


def statuses(console: httpx.Client) -> dict[int, str]:
    return {b["node_id"]: b["status"] for b in ok(console.get("/broker"))["brokers"]}


def leaders(console: httpx.Client) -> set[int | None]:
    """The topic's partitions' leaders (None: a partition without one); {None} while the
    console answers with an error (a partition's ListOffsets while its leader moves)."""
    answer = console.get(f"/topics/{TOPIC}")
    if answer.status_code != 200:
        return {None}
    return {p["leader"] for p in answer.json()["partitions"]}


LAST_GROUP_ANSWER: list[str] = [""]
"""The console's last answer about the group, for a failure's message."""


def coordinator(cluster: KafkaCluster) -> int:
    """The group's coordinator, by FindCoordinator (v4: a list of keys; type 0, a group)."""
    with WireClient(cluster.bootstrap_servers.split(",")[0]) as client:
        asked = {"key_type": 0, "coordinator_keys": [GROUP]}
        (found,) = client.request(ApiKey.FIND_COORDINATOR, 4, asked).coordinators
    assert found.error_code == 0, found
    return int(found.node_id)


def lag(console: httpx.Client) -> int | None:
    """The group's total lag; None while the console answers with an error."""
    answer = console.get(f"/groups/{GROUP}")
    LAST_GROUP_ANSWER[0] = f"{answer.status_code} {answer.text}"
    if answer.status_code != 200:
        return None
    return sum(o["lag"] for o in answer.json()["offsets"])


def commit_at_start(bootstrap: str) -> None:
    """The group commits offset 0 on every partition (a commit, no join): all is lag."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "log_level": 0})
    try:
        offsets = [TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)]
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def browse(console: httpx.Client, topic: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = ok(console.get(f"/topics/{topic}/messages"))["messages"]
    return messages


def check_topic_and_group(console: httpx.Client, cluster: KafkaCluster) -> None:
    created = ok(console.post("/topics", json={"name": TOPIC, "partitions": PARTITIONS}), 201)
    every = list(range(1, NODES + 1))
    for partition in created["partitions"]:
        assert sorted(partition["replicas"]) == every  # the cluster's replication factor 3
        assert sorted(partition["isr"]) == every
    # Kafka spreads the leaders over the brokers.
    assert len({p["leader"] for p in created["partitions"]}) == PARTITIONS
    for key in KEYS:
        ok(console.post(f"/topics/{TOPIC}/messages", json={"key": key, "value": "v"}), 201)
    assert sorted(m["key"]["data"] for m in browse(console, TOPIC)) == KEYS
    commit_at_start(cluster.bootstrap_servers)
    group = ok(console.get(f"/groups/{GROUP}"))
    assert sum(o["lag"] for o in group["offsets"]) == len(KEYS)
    assert {o["topic"] for o in group["offsets"]} == {TOPIC}
    assert lag(console) == len(KEYS)


def check_redrive(console: httpx.Client) -> None:
    """As the DLQ page does: each DLQ record back to its original topic, ``redrive_from``
    naming the DLQ, the ``shoal.dlq.*`` headers left behind."""
    ok(console.post("/topics", json={"name": DLQ, "partitions": 1}), 201)
    dead = {
        "key": "order-refused",
        "value": "v",
        "headers": [{"key": "shoal.dlq.original.topic", "value": TOPIC}],
    }
    ok(console.post(f"/topics/{DLQ}/messages", json=dead), 201)
    (record,) = browse(console, DLQ)
    back = {"key": record["key"]["data"], "value": record["value"]["data"], "redrive_from": DLQ}
    refused = console.post(f"/topics/{DLQ}/messages", json=back)  # not into the DLQ itself
    assert refused.status_code == 400 and refused.json()["error"] == "redrive_target_refused"
    ok(console.post(f"/topics/{TOPIC}/messages", json=back), 201)
    redriven = ok(console.get(f"/topics/{TOPIC}/messages", params={"key": "order-refused"}))
    assert [m["key"]["data"] for m in redriven["messages"]] == ["order-refused"]


class LiveView:
    """A live CLI view (``shoal top``, ``shoal group describe --watch``) in its own process,
    piped: each refresh prints one snapshot, which a thread collects as it comes."""

    def __init__(self, title: str, *argv: str, bootstrap: str) -> None:
        self.title = title
        command = [sys.executable, "-m", "shoal.cli", *argv, "--interval", LIVE_INTERVAL_S]
        command += ["--timeout", LIVE_TIMEOUT_S]
        self.process = subprocess.Popen(
            [*command, "--bootstrap-server", bootstrap],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def mark(self) -> int:
        """Where the output is now: snapshots after it began after this call."""
        with self._lock:
            return len(self._lines)

    def snapshots(self, since: int = 0) -> list[list[str]]:
        """The refreshes printed after ``since``: each a table (from its title line) or an
        UNAVAILABLE line; the last one may be still printing."""
        with self._lock:
            lines = self._lines[since:]
        shots: list[list[str]] = []
        for line in lines:
            if self.title in line or line.startswith("UNAVAILABLE"):
                shots.append([])
            if shots:
                shots[-1].append(line)
        return shots

    def output(self) -> str:
        with self._lock:
            return "\n".join(self._lines[-200:])

    def stop(self) -> None:
        alive = self.process.poll() is None
        self.process.terminate()
        self.process.wait(REQUEST_TIMEOUT_S)
        self._reader.join(REQUEST_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        assert alive, f"{self.title!r} exited with {self.process.returncode}:\n{self.output()}"


Lag = Callable[[list[str]], int | None]
"""Reads the group's lag from one snapshot of a live view."""


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")[1:-1]]


def watch_lag(shot: list[str]) -> int | None:
    """The group's total lag in one ``group describe --watch`` snapshot (None: unavailable)."""
    if shot[0].startswith("UNAVAILABLE"):
        return None
    rows = [cells(line) for line in shot if f"│ {TOPIC} " in line]
    return sum(int(row[4]) for row in rows if len(row) > 4 and row[4].isdigit())


def top_lag(shot: list[str]) -> int | None:
    """The group's lag in one ``shoal top`` snapshot (None: not shown)."""
    for line in shot:
        row = cells(line)
        if row[:1] == [GROUP] and len(row) > 3:
            return int(row[3])
    return None


def shows_or_says_unavailable(shot: list[str], lag: Lag) -> bool:
    return lag(shot) is not None or any("UNAVAILABLE" in line for line in shot)


def until_lag(
    view: LiveView, since: int, lag: Callable[[list[str]], int | None], want: int
) -> None:
    def shown() -> bool:
        complete = view.snapshots(since)[:-1]  # the last may be half printed
        return bool(complete) and lag(complete[-1]) == want

    until(shown, f"{view.title!r} showing the lag {want}", lambda: "\n" + view.output())


@contextmanager
def overview_in_a_browser(console: httpx.Client) -> Iterator[Page]:
    """The console's overview page in Debian's chromium; its own timer re-reads it."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/peers/chromium.sh` (make peers)")
    url = str(console.base_url).removesuffix("api/v1").removesuffix("api/v1/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(base_url=url)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto("/")
            yield page
            assert errors == [], f"the console's script failed: {errors}"
        finally:
            browser.close()


def browser_status(page: Page, node_id: int, status: str) -> None:
    """The overview's broker table shows ``status`` for the node (its next poll, at most)."""
    cell = page.locator(f"#brokers tr[data-broker='{node_id}'] td").last
    expect(cell).to_have_text(status, timeout=CHANGE_TIMEOUT_S * 1000)


@pytest.mark.browser
def test_console_on_the_cluster_through_a_broker_failure(healthy_cluster: KafkaCluster) -> None:
    cluster = healthy_cluster
    with (
        shoal_console(cluster.bootstrap_servers) as console,
        overview_in_a_browser(console) as page,
    ):
        overview = ok(console.get("/broker"))
        assert [(b["node_id"], b["host"], b["port"], b["status"]) for b in overview["brokers"]] == [
            (n.node_id, "127.0.0.1", n.port, "up") for n in cluster.nodes
        ]
        for node in cluster.nodes:
            browser_status(page, node.node_id, "up")
        check_topic_and_group(console, cluster)
        check_redrive(console)
        live_lag = len(KEYS) + 1  # the redriven record too
        bootstrap = cluster.bootstrap_servers
        views = [
            (LiveView(f"group {GROUP} ·", "group", "describe", GROUP, "--watch",
                      bootstrap=bootstrap), watch_lag),
            (LiveView("topics ·", "top", bootstrap=bootstrap), top_lag),
        ]  # fmt: skip
        try:
            for view, view_lag in views:
                until_lag(view, 0, view_lag, live_lag)
            marks = [view.mark() for view, _ in views]

            # The group's coordinator dies (it leads one of the topic's partitions too, as the
            # leaders are spread): no clean shutdown, no hand-off.
            victim = coordinator(cluster)
            assert victim in leaders(console)
            cluster.kill(victim)
            # The victim down and every other broker up, in one answer: the brokers' metadata
            # caches apply the controller's fencing at slightly different moments, so an answer
            # from a broker that has not applied it yet may still show the victim up once.
            until(
                lambda: (
                    statuses(console)
                    == {n.node_id: "down" if n.node_id == victim else "up" for n in cluster.nodes}
                ),
                f"broker {victim} shown down, the others up",
                lambda: f": {statuses(console)}",
            )
            browser_status(page, victim, "down")
            check_survivors(console, cluster, victim)
            # The live views show the group again, from its new coordinator, with the record
            # produced since; until then each refresh showed the group or said it was
            # unavailable, never showed nothing without saying why.
            for (view, view_lag), since in zip(views, marks, strict=True):
                until_lag(view, since, view_lag, len(KEYS) + 2)
                shots = view.snapshots(since)[:-1]
                silent = [s for s in shots if not shows_or_says_unavailable(s, view_lag)]
                assert not silent, f"{view.title!r} showed no group, not saying why: {silent}"
            watch_shots = views[0][0].snapshots(marks[0])
            # Not asserted: a refresh may wait out the move (1 run in 7 showed no outage).
            outage = [shot[0] for shot in watch_shots if watch_lag(shot) is None]
            print(f"group describe --watch through the kill of {victim}: {outage}")
        finally:
            for view, _ in views:
                view.stop()

        cluster.restart(victim)
        until(lambda: statuses(console)[victim] == "up", f"broker {victim} shown up again")
        browser_status(page, victim, "up")
        assert len(browse(console, TOPIC)) == len(KEYS) + 2


def check_survivors(console: httpx.Client, cluster: KafkaCluster, victim: int) -> None:
    # The console still answers, on the brokers left: a new leader, producing, browsing.
    until(lambda: leaders(console).isdisjoint({victim, None}), f"leaders other than {victim}")
    ok(console.post(f"/topics/{TOPIC}/messages", json={"key": "after", "value": "v"}), 201)
    assert len(browse(console, TOPIC)) == len(KEYS) + 2  # with the redriven one
    # The group's coordinator was the victim: once the offsets topic has a new leader there
    # (and the console's Admin client, renewed after a request that got no answer, has found
    # it), the lag counts the message produced since.
    until(
        lambda: lag(console) == len(KEYS) + 2,
        "the group's lag from the new coordinator",
        lambda: f"; the console's last answer: {LAST_GROUP_ANSWER[0]}",
    )
