"""node.id and the advertised listener: settings from flags, the config file and SHOAL_*
variables, checked at start with a clear error; the id and the address clients are told flow
into Metadata, FindCoordinator, DescribeCluster, DescribeTopicPartitions and DescribeConfigs.

(The advertised listener across machines is shown in test_network_namespaces.py; Kafka's own
answers with a node id and advertised listener in tests/differential/.)"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Final

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from shoal.embedded import EmbeddedBroker
from shoal.protocol import ApiKey, ErrorCode
from shoal.server.app import BrokerApp
from shoal.server.settings import Settings, SettingsError, load_settings
from tests.peers.kafka_peer import free_port
from tests.server.wire import WireClient

TIMEOUT_S: Final = 15.0
Identified = tuple[EmbeddedBroker, int]
NODE: Final = 7


def shoal_broker_command(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``shoal broker`` with settings that must stop it before it binds anything."""
    script = Path(sys.executable).parent / "shoal"
    result = subprocess.run(
        [str(script), "broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    return result.returncode, result.stderr


# -- settings -----------------------------------------------------------------------------


def test_defaults() -> None:
    config = Settings().broker_config()
    assert (config.node_id, config.advertised_host, config.advertised_port) == (
        1,
        "127.0.0.1",
        9092,
    )


def test_from_environment_file_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "shoal.toml"
    toml.write_text('node_id = 3\nadvertised_listener = "broker.example.com:19092"\n')
    from_file = load_settings(str(toml), environ={}).broker_config()
    assert (from_file.node_id, from_file.advertised_host, from_file.advertised_port) == (
        3,
        "broker.example.com",
        19092,
    )
    env = {"SHOAL_NODE_ID": "4", "SHOAL_ADVERTISED_LISTENER": "[2001:db8::5]:9093"}
    from_env = load_settings(str(toml), environ=env).broker_config()
    assert (from_env.node_id, from_env.advertised_host, from_env.advertised_port) == (
        4,
        "2001:db8::5",
        9093,
    )
    flags = {"node_id": 5, "advertised_listener": "10.0.0.5:9094"}
    from_flags = load_settings(str(toml), environ=env, overrides=flags).broker_config()
    assert (from_flags.node_id, from_flags.advertised_host, from_flags.advertised_port) == (
        5,
        "10.0.0.5",
        9094,
    )
    # A wildcard bind is fine once an address is advertised (and, with no authentication,
    # allow_insecure says so).
    wildcard = Settings(
        kafka_listen="0.0.0.0:9092", advertised_listener="10.0.0.5:9092", allow_insecure=True
    )
    assert wildcard.broker_config().advertised_host == "10.0.0.5"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"advertised_listener": "broker.example.com"}, "must look like HOST:PORT"),
        ({"advertised_listener": ":9092"}, "must look like HOST:PORT"),
        ({"advertised_listener": "PLAINTEXT://broker:9092"}, "without a listener name"),
        ({"advertised_listener": "broker:0"}, "port 0 is out of range 1-65535"),
        ({"advertised_listener": "broker:70000"}, "port 70000 is out of range 1-65535"),
        ({"advertised_listener": "bad host!:9092"}, "is not a host name or IP address"),
        ({"advertised_listener": "2001:db8::5:9092"}, "put an IPv6 address in brackets"),
        ({"advertised_listener": "0.0.0.0:9092"}, "not an address a client can connect to"),
        ({"node_id": -1}, "node_id must be between 0 and 2147483647, not -1"),
        ({"node_id": 2**31}, "node_id must be between 0 and 2147483647"),
        ({"kafka_listen": "0.0.0.0:9092"}, "binds every interface"),
        ({"kafka_listen": "[::]:9092"}, "set advertised_listener"),
    ],
)
def test_bad_settings_are_refused_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**settings).broker_config()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--kafka-listen", "0.0.0.0:9092"], {}, "binds every interface"),
        (["--advertised-listener", "broker"], {}, "must look like HOST:PORT"),
        (["--advertised-listener", "broker:99999"], {}, "out of range"),
        (["--node-id", "-1"], {}, "node_id must be between 0"),
        ([], {"SHOAL_NODE_ID": "one"}, "'one' is not a valid int"),
    ],
)
def test_shoal_broker_refuses_bad_settings_at_start(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    data = tmp_path / "data"
    code, stderr = shoal_broker_command(
        "--data-dir", str(data), *args, env={"PATH": "/usr/bin:/bin", **env}
    )
    assert code == 2
    assert stderr.startswith("shoal broker: ")
    assert message in stderr
    assert "Traceback" not in stderr
    assert not data.exists(), "a refused start must change nothing"


def test_embedded_broker_refuses_bad_settings_before_starting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="binds every interface"):
        EmbeddedBroker(str(tmp_path), host="0.0.0.0")
    with pytest.raises(SettingsError, match="node_id"):
        EmbeddedBroker(str(tmp_path), node_id=-5)


# -- the id and the address clients are told ---------------------------------------------------


@pytest.fixture(scope="module")
def identified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identified]:
    """A broker with node.id 7 that tells clients "localhost" while bound to 127.0.0.1."""
    port = free_port()
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("identity")),
        port=port,
        node_id=NODE,
        advertised_listener=f"localhost:{port}",
    ) as broker:
        yield broker, port


def request(broker: EmbeddedBroker, api_key: int, version: int, values: dict[str, Any]) -> Any:
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(api_key, version, values)


@pytest.mark.integration
def test_node_id_and_address_in_every_answer(identified: Identified) -> None:
    broker, port = identified
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("placed", 2, 1)])["placed"].result(TIMEOUT_S)

    metadata = request(
        broker,
        ApiKey.METADATA,
        12,
        {"topics": [{"name": "placed"}], "allow_auto_topic_creation": False},
    )
    assert [(b.node_id, b.host, b.port) for b in metadata.brokers] == [(NODE, "localhost", port)]
    assert metadata.controller_id == NODE
    for p in metadata.topics[0].partitions:
        assert (p.leader_id, list(p.replica_nodes), list(p.isr_nodes)) == (NODE, [NODE], [NODE])

    coordinator = request(broker, ApiKey.FIND_COORDINATOR, 4, {"coordinator_keys": ["g"]})
    (found,) = coordinator.coordinators
    assert (found.error_code, found.node_id, found.host, found.port) == (0, NODE, "localhost", port)

    cluster = request(broker, ApiKey.DESCRIBE_CLUSTER, 1, {})
    assert cluster.controller_id == NODE
    assert [(b.broker_id, b.host, b.port) for b in cluster.brokers] == [(NODE, "localhost", port)]

    described = request(
        broker,
        ApiKey.DESCRIBE_TOPIC_PARTITIONS,
        0,
        {"topics": [{"name": "placed"}], "response_partition_limit": 10},
    )
    assert {p.leader_id for p in described.topics[0].partitions} == {NODE}

    node = ConfigResource(ResourceType.BROKER, str(NODE))
    configs = admin.describe_configs([node])[node].result(TIMEOUT_S)
    assert configs["node.id"].value == str(NODE)
    assert configs["advertised.listeners"].value == f"PLAINTEXT://localhost:{port}"
    other = request(
        broker,
        ApiKey.DESCRIBE_CONFIGS,
        4,
        {"resources": [{"resource_type": 4, "resource_name": "1", "configuration_keys": None}]},
    )
    assert other.results[0].error_code == ErrorCode.INVALID_REQUEST
    assert f"this is broker {NODE}" in other.results[0].error_message


@pytest.mark.integration
def test_clients_follow_the_advertised_address(identified: Identified) -> None:
    _, port = identified
    # Bootstrap through the advertised name: every later connection goes to it too.
    bootstrap = f"localhost:{port}"
    producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    producer.produce("followed", b"through localhost", partition=0)
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "followers",
            "broker.address.family": "v4",
        }
    )
    try:
        consumer.assign([TopicPartition("followed", 0, 0)])
        msg = consumer.poll(TIMEOUT_S)
        assert msg is not None and msg.error() is None
        assert msg.value() == b"through localhost"
        committed = consumer.commit(message=msg, asynchronous=False)
        assert committed is not None and committed[0].error is None
    finally:
        consumer.close()
    names = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert names.brokers[NODE].host == "localhost"


# -- port 0: the port the listener got is the one clients are told ------------------------------


def told_addresses(bootstrap: str) -> tuple[list[tuple[int, str, int]], tuple[str, int], str]:
    """Metadata's brokers, FindCoordinator's address and DescribeConfigs' advertised.listeners."""
    with WireClient(bootstrap) as client:
        metadata = client.request(
            ApiKey.METADATA, 12, {"topics": [], "allow_auto_topic_creation": False}
        )
        (found,) = client.request(
            ApiKey.FIND_COORDINATOR, 4, {"coordinator_keys": ["g"]}
        ).coordinators
        (described,) = client.request(
            ApiKey.DESCRIBE_CONFIGS,
            4,
            {
                "resources": [
                    {
                        "resource_type": 4,
                        "resource_name": "1",
                        "configuration_keys": ["advertised.listeners"],
                    }
                ]
            },
        ).results
    (listeners,) = described.configs
    return (
        [(b.node_id, b.host, b.port) for b in metadata.brokers],
        (found.host, found.port),
        listeners.value,
    )


@pytest.mark.integration
def test_embedded_broker_on_port_0_tells_clients_the_bound_port(tmp_path: Path) -> None:
    with EmbeddedBroker(str(tmp_path / "data"), port=0) as broker:
        bound = broker.app.kafka_port
        assert bound != 0
        brokers, coordinator, listeners = told_addresses(f"127.0.0.1:{bound}")
    assert brokers == [(1, "127.0.0.1", bound)]
    assert coordinator == ("127.0.0.1", bound)
    assert listeners == f"PLAINTEXT://127.0.0.1:{bound}"


READY_LINE: Final = re.compile(
    rb"shoal broker ready: .* kafka on 127\.0\.0\.1:(\d+) \(clients are told ([^)]*)\)"
)


@pytest.mark.integration
def test_shoal_broker_on_port_0_tells_clients_the_bound_port(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "shoal"
    with subprocess.Popen(
        [
            str(script), "broker", "--data-dir", str(tmp_path / "data"),
            "--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        ready: Future[re.Match[bytes] | None] = Future()

        def read_log(stderr: IO[bytes]) -> None:
            """Find the ready line, then keep reading so the broker never blocks on a full pipe."""
            for line in stderr:
                if not ready.done() and (match := READY_LINE.search(line)):
                    ready.set_result(match)
            if not ready.done():
                ready.set_result(None)

        assert process.stderr is not None
        reader = threading.Thread(target=read_log, args=(process.stderr,), daemon=True)
        reader.start()
        try:
            match = ready.result(timeout=60)
            assert match is not None, "the broker exited before it was ready"
            bound = int(match[1])
            assert match[2].decode() == f"127.0.0.1:{bound}"
            brokers, coordinator, listeners = told_addresses(f"127.0.0.1:{bound}")
            assert brokers == [(1, "127.0.0.1", bound)]
            assert coordinator == ("127.0.0.1", bound)
            assert listeners == f"PLAINTEXT://127.0.0.1:{bound}"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            reader.join(timeout=60)
    assert process.returncode == 0


@pytest.mark.integration
def test_a_start_that_fails_after_binding_leaves_the_port_free(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    port = free_port()
    app = BrokerApp(
        replace(
            Settings(),
            data_dir=str(not_a_directory),
            kafka_listen=f"127.0.0.1:{port}",
            http_listen="127.0.0.1:0",
        )
    )

    async def start_then_probe() -> None:
        try:
            with pytest.raises(OSError):
                await app.start()
            # No SO_REUSEADDR here: a socket still bound to the port would refuse this bind.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        finally:
            await app.stop()

    asyncio.run(start_then_probe())


@pytest.mark.integration
def test_an_embedded_broker_that_fails_to_start_releases_its_http_port(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("a file where the data directory should be")
    http_port = free_port()
    broker = EmbeddedBroker(str(not_a_directory), http_port=http_port)
    with pytest.raises(OSError):
        broker.start()
    # The HTTP listener was up before the logs failed to open; no SO_REUSEADDR here, so a
    # socket still bound (or a server task still running) would refuse this bind.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", http_port))
