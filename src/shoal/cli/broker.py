"""``shoal broker``: run the Kafka-protocol broker with its HTTP face in this process."""

from __future__ import annotations

import argparse
import asyncio
import sys


def add_broker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = sub.add_parser(
        "broker",
        help="run the broker",
        description="Run the Kafka-protocol broker with its HTTP face on a local data directory. "
        "Settings come from defaults, then --config, then SHOAL_* environment variables, "
        "then these flags.",
    )
    broker.add_argument("--data-dir", help="log directory (default ./shoal-data)")
    broker.add_argument(
        "--kafka-listen", help="HOST:PORT for Kafka clients (default 127.0.0.1:9092)"
    )
    broker.add_argument("--http-listen", help="HOST:PORT for HTTP (default 127.0.0.1:8080)")
    broker.add_argument(
        "--advertised-listener",
        metavar="HOST:PORT",
        help="the address clients are told to connect to (default: --kafka-listen's; "
        "required when that binds 0.0.0.0 or ::)",
    )
    broker.add_argument(
        "--node-id", type=int, metavar="N", help="this broker's node.id (default 1)"
    )
    broker.add_argument("--config", help="a TOML file of settings (same names as the flags)")
    broker.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    broker.add_argument(
        "--log-format", choices=["text", "json"], help="text (default) or one JSON object a line"
    )
    broker.add_argument(
        "--flush-policy",
        choices=["sync", "interval", "none"],
        help="when acks=all is answered: after fsync (sync, default) or not (weaker)",
    )
    # Listeners and TLS (Kafka's listeners, advertised.listeners, ssl.*); the key password is
    # only read from the config file or SHOAL_SSL_KEY_PASSWORD, never from a flag.
    broker.add_argument(
        "--listeners",
        metavar="NAME://HOST:PORT,...",
        help="Kafka's listeners, e.g. PLAINTEXT://127.0.0.1:9092,SSL://0.0.0.0:9093 "
        "(default: PLAINTEXT://<--kafka-listen>)",
    )
    broker.add_argument(
        "--advertised-listeners",
        metavar="NAME://HOST:PORT,...",
        help="the address each listener's clients are told (default: its bind address)",
    )
    broker.add_argument(
        "--listener-security-protocol-map",
        metavar="NAME:PROTOCOL,...",
        help="each listener's security protocol (default: PLAINTEXT:PLAINTEXT,SSL:SSL,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL)",
    )
    broker.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="allow a listener other machines can reach that authenticates nobody",
    )
    broker.add_argument(
        "--ssl-keystore-location", metavar="PEM", help="the server's key and certificate chain"
    )
    broker.add_argument(
        "--ssl-truststore-location", metavar="PEM", help="CA certificates of client certificates"
    )
    broker.add_argument(
        "--ssl-client-auth",
        choices=["none", "requested", "required"],
        help="ask SSL clients for a certificate (default none)",
    )
    # Issue 13 (S2): Kafka's listener.name.<name>.ssl.* overrides and ssl.cipher.suites.
    broker.add_argument(
        "--listener-ssl-keystore-location",
        metavar="NAME:PEM,...",
        help="a TLS listener's own key and certificate chain (others: --ssl-keystore-location)",
    )
    broker.add_argument(
        "--listener-ssl-truststore-location",
        metavar="NAME:PEM,...",
        help="a TLS listener's own CA certificates of client certificates",
    )
    broker.add_argument(
        "--listener-ssl-client-auth",
        metavar="NAME:none|requested|required,...",
        help="a TLS listener's own --ssl-client-auth",
    )
    broker.add_argument(
        "--ssl-cipher-suites",
        metavar="SUITE,...",
        help="the TLS 1.2 cipher suites offered, by IANA or OpenSSL name (default: OpenSSL's)",
    )
    broker.set_defaults(run=run_broker, command_parser=broker)


def run_broker(args: argparse.Namespace) -> int:
    # Imported here so that the client commands do not pay for loading the broker; the
    # broker itself (the HTTP stack, the registry) only once the settings are known good, so a
    # mistyped setting is answered without loading it.
    from shoal.server.settings import SettingsError, load_settings

    try:
        settings = load_settings(
            args.config,
            overrides={
                "data_dir": args.data_dir,
                "kafka_listen": args.kafka_listen,
                "http_listen": args.http_listen,
                "log_level": args.log_level,
                "log_format": args.log_format,
                "flush_policy": args.flush_policy,
                "advertised_listener": args.advertised_listener,
                "node_id": args.node_id,
                "listeners": args.listeners,
                "advertised_listeners": args.advertised_listeners,
                "listener_security_protocol_map": args.listener_security_protocol_map,
                "allow_insecure": args.allow_insecure,
                "ssl_keystore_location": args.ssl_keystore_location,
                "ssl_truststore_location": args.ssl_truststore_location,
                "ssl_client_auth": args.ssl_client_auth,
                "listener_ssl_keystore_location": args.listener_ssl_keystore_location,
                "listener_ssl_truststore_location": args.listener_ssl_truststore_location,
                "listener_ssl_client_auth": args.listener_ssl_client_auth,
                "ssl_cipher_suites": args.ssl_cipher_suites,
            },
        )
        settings.broker_config()
    except SettingsError as exc:
        print(f"shoal broker: {exc}", file=sys.stderr)
        return 2
    from shoal.server.app import BrokerApp
    from shoal.server.event_loops import EventLoopUnavailable, loop_factory
    from shoal.server.logs import configure_logging
    from shoal.storage.documents import DocumentDamaged

    try:
        new_loop = loop_factory(settings.event_loop)
    except EventLoopUnavailable as exc:
        print(f"shoal broker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    app = BrokerApp(settings)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(app.run_until_stopped())
    # A port taken, a certificate file unreadable, a damaged topics.json or acls.json...
    except (OSError, SettingsError, DocumentDamaged) as exc:
        print(f"shoal broker: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
