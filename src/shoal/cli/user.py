"""``shoal user``: create, list, delete and change the password of SCRAM users; ``hash``
prints a line of a PLAIN users file (the broker's ``sasl_plain_users_file``).

Through the AdminClient's SCRAM APIs (AlterUserScramCredentials / DescribeUserScramCredentials),
so the same commands manage a Kafka cluster's users. The password is prompted for (twice, not
echoed) on a terminal, or read from the first line of ``--password-file`` or of standard input;
it is salted by the client and never printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException

# The admin module's documented names (imported without __all__, see shoal.cli.topic).
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from shoal.cli.common import ClientContext, CliError, UsageError, add_client_options
from shoal.security.plain_users import UsersFileError, hash_line
from shoal.security.scram import ALGORITHMS, new_credential

MECHANISMS: Final = {
    "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
    "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512,
}
NAMES: Final = {value: name for name, value in MECHANISMS.items()}
DEFAULT_ITERATIONS: Final = 8192
"""Above Kafka's minimum of 4096 and under its maximum of 16384."""


def add_user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="create, list, delete SCRAM users and change passwords")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a user (SCRAM credentials)")
    passwd = actions.add_parser("passwd", help="change an existing user's password")
    for parser, run in ((create, run_create), (passwd, run_passwd)):
        parser.add_argument("name")
        parser.add_argument(
            "-m",
            "--mechanism",
            choices=sorted(MECHANISMS),
            action="append",
            help="SCRAM mechanism (repeatable; default: SCRAM-SHA-512 and SCRAM-SHA-256)",
        )
        parser.add_argument(
            "--iterations",
            type=int,
            default=DEFAULT_ITERATIONS,
            help=f"PBKDF2 iterations, 4096 to 16384 (default {DEFAULT_ITERATIONS})",
        )
        parser.add_argument(
            "--password-file",
            metavar="FILE",
            help="read the password from the first line of FILE (default: prompt on a "
            "terminal, else the first line of standard input)",
        )
        parser.add_argument(
            "--data-dir",
            metavar="DIR",
            help="write the credential straight into a stopped broker's data directory "
            "instead of through a broker (the first user of a SASL-only listener, as "
            "kafka-storage format --add-scram does)",
        )
        parser.set_defaults(run=run, command_parser=parser)

    listing = actions.add_parser("list", help="list users and their mechanisms")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(run=run_list, command_parser=listing)

    delete = actions.add_parser("delete", help="delete a user's SCRAM credentials")
    delete.add_argument("name")
    delete.add_argument(
        "-m",
        "--mechanism",
        choices=sorted(MECHANISMS),
        action="append",
        help="delete only this mechanism's credential (default: all of them)",
    )
    delete.set_defaults(run=run_delete, command_parser=delete)

    for parser in (create, passwd, listing, delete):
        add_client_options(parser)

    hashed = actions.add_parser(
        "hash",
        help="print a line for the broker's sasl_plain_users_file (offline: PLAIN users "
        "without SCRAM credentials)",
    )
    hashed.add_argument("name")
    hashed.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    hashed.add_argument("--password-file", metavar="FILE")
    hashed.set_defaults(run=run_hash, command_parser=hashed)


def _admin(ctx: ClientContext) -> AdminClient:
    admin = AdminClient(ctx.config())
    try:
        admin.list_topics(timeout=ctx.timeout_s)
    except KafkaException as exc:
        raise ctx.error(exc, "read cluster metadata", admin) from None
    return admin


def _result(ctx: ClientContext, future: Any, action: str) -> Any:
    try:
        return future.result(timeout=ctx.timeout_s + 1)
    except TimeoutError:
        raise CliError(f"cannot {action}: no answer within {ctx.timeout_s:g} s") from None
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError):
            raise ctx.kafka_error(error, action) from None
        raise CliError(f"cannot {action}: {exc}") from None


def _existing(ctx: ClientContext, admin: AdminClient, name: str) -> dict[str, int]:
    """Mechanism name -> iterations of the user's credentials; empty when there are none."""
    # With a list of names it answers one future per name (a dict).
    futures: dict[str, Any] = admin.describe_user_scram_credentials([name])  # type: ignore[assignment]
    future = futures[name]
    try:
        description = future.result(timeout=ctx.timeout_s + 1)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.RESOURCE_NOT_FOUND:
            return {}
        raise ctx.error(exc, f"describe user {name!r}") from None
    return {NAMES[i.mechanism]: i.iterations for i in description.scram_credential_infos}


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise CliError(f"cannot read --password-file: {exc.strerror}") from None
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("the password is empty")
    return password


def _upsert(ctx: ClientContext, args: argparse.Namespace, verb: str) -> None:
    if not 4096 <= args.iterations <= 16384:
        raise UsageError("--iterations must be between 4096 and 16384")
    mechanisms = args.mechanism or ["SCRAM-SHA-512", "SCRAM-SHA-256"]
    if args.data_dir:
        _upsert_offline(args, mechanisms, verb)
        return
    admin = _admin(ctx)
    existing = _existing(ctx, admin, args.name)
    if verb == "create" and existing:
        raise CliError(f"user {args.name!r} already exists (use passwd to change its password)")
    if verb == "passwd" and not existing:
        raise CliError(f"user {args.name!r} does not exist")
    password = _password(args).encode()
    for mechanism in mechanisms:
        upsertion = UserScramCredentialUpsertion(
            args.name, ScramCredentialInfo(MECHANISMS[mechanism], args.iterations), password
        )
        # One request per mechanism: Kafka refuses a user named twice in one request.
        futures = admin.alter_user_scram_credentials([upsertion])
        _result(ctx, futures[args.name], f"{verb} user {args.name!r} ({mechanism})")


def _upsert_offline(args: argparse.Namespace, mechanisms: list[str], verb: str) -> None:
    # Imported here: the broker's storage layer costs the other user commands' start-up
    # tens of ms, and only --data-dir writes to a data directory.
    from shoal.security.scram_store import ScramCredentialStore, Upsertion
    from shoal.storage.fs import OsFileSystem
    from shoal.storage.manager import LOCK_FILE

    fs = OsFileSystem()
    data_dir: str = args.data_dir
    lock = os.path.join(data_dir, LOCK_FILE)
    try:
        fs.makedirs(data_dir)
        fs.lock(lock)  # refused while a broker uses the directory
    except OSError as exc:
        raise CliError(
            f"cannot change users in {data_dir}: {exc.strerror or exc}; stop the broker, or "
            "leave out --data-dir to go through it"
        ) from None
    try:
        store = ScramCredentialStore(fs, data_dir)
        existing = store.mechanisms_of(args.name)
        if verb == "create" and existing:
            raise CliError(f"user {args.name!r} already exists (use passwd to change it)")
        if verb == "passwd" and not existing:
            raise CliError(f"user {args.name!r} does not exist")
        password = _password(args)
        store.apply(
            [
                Upsertion(
                    args.name,
                    ALGORITHMS[m],
                    new_credential(ALGORITHMS[m], password, args.iterations),
                )
                for m in mechanisms
            ],
            [],
        )
    finally:
        fs.unlock(lock)


def run_create(args: argparse.Namespace) -> int:
    _upsert(ClientContext(args), args, "create")
    print(f"Created user {args.name}.")
    return 0


def run_passwd(args: argparse.Namespace) -> int:
    _upsert(ClientContext(args), args, "passwd")
    print(f"Changed the password of user {args.name}.")
    return 0


def run_hash(args: argparse.Namespace) -> int:
    if not 4096 <= args.iterations <= 16384:
        raise UsageError("--iterations must be between 4096 and 16384")
    try:
        line = hash_line(args.name, _password(args), args.iterations)
    except UsersFileError as exc:
        raise UsageError(str(exc)) from None
    print(line)
    return 0


def run_list(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    admin = _admin(ctx)
    described = _result(ctx, admin.describe_user_scram_credentials(), "list users")
    users = {
        name: {NAMES[i.mechanism]: i.iterations for i in d.scram_credential_infos}
        for name, d in sorted(described.items())
    }
    if args.format == "json":
        print(json.dumps([{"name": n, "mechanisms": m} for n, m in users.items()], indent=2))
        return 0
    for name, mechanisms in users.items():
        listed = ", ".join(f"{m} (iterations={i})" for m, i in sorted(mechanisms.items()))
        print(f"{name}\t{listed}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    ctx = ClientContext(args)
    admin = _admin(ctx)
    existing = _existing(ctx, admin, args.name)
    wanted = args.mechanism or sorted(existing)
    missing = [m for m in wanted if m not in existing]
    if not existing or missing:
        what = f" has no {', '.join(missing)} credential" if existing else " does not exist"
        raise CliError(f"user {args.name!r}{what}")
    for mechanism in wanted:
        deletion = UserScramCredentialDeletion(args.name, MECHANISMS[mechanism])
        futures = admin.alter_user_scram_credentials([deletion])
        _result(ctx, futures[args.name], f"delete user {args.name!r} ({mechanism})")
    print(f"Deleted user {args.name}.")
    return 0
