"""The ``shoal`` command line (grows with each layer; see ``shoal --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shoal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    broker = sub.add_parser("broker", help="run the broker on a local data directory")
    broker.add_argument("--data-dir", default="./shoal-data", help="log directory (created)")
    args = parser.parse_args(argv)
    if args.command == "broker":
        from shoal.storage import LogManager

        with LogManager.open(args.data_dir) as logs:
            count = len(logs.partitions())
            print(f"shoal: data directory {args.data_dir}: {count} partitions recovered")
        print(
            "shoal: the Kafka listener and HTTP face are not built yet; "
            "this command only opens and recovers the log directory.",
            file=sys.stderr,
        )
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
