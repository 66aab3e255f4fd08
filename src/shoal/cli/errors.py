"""The two errors a command raises to end itself; kept apart from ``common`` so that ``main``
can catch them without importing the Kafka client library (see ``shoal.cli.commands``)."""

from __future__ import annotations


class CliError(Exception):
    """A user or operating error: printed as one line without a traceback, exit code 1."""

    exit_code = 1


class UsageError(CliError):
    """Flags that parse one by one but not together: answered with the usage, exit code 2."""

    exit_code = 2
