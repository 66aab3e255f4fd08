"""Optional client libraries: each transport beyond Kafka needs one, installed by a pip extra.

``pip install shoal`` brings what the broker, the registry, the CLI and the Kafka transport need.
RabbitMQ, Redis and NATS clients are extras (``shoal[amqp]``, ``shoal[redis]``, ``shoal[nats]``),
imported only when a URL names them; without the extra, the import fails with a one-line
:class:`MissingExtraError` that names the extra to install, instead of a bare
``ModuleNotFoundError: aio_pika`` from deep inside a transport module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

EXTRA_MODULES: Final[dict[str, frozenset[str]]] = {
    # aio-pika's own client libraries too: a half-installed aio-pika is the same fix.
    "amqp": frozenset({"aio_pika", "aiormq", "pamqp"}),
    "redis": frozenset({"redis"}),
    "nats": frozenset({"nats"}),
}
"""The top-level modules each extra of pyproject.toml installs (that shoal imports)."""


class MissingExtraError(ImportError):
    """An optional client library is not installed; the message names the pip extra."""


@contextmanager
def extra_required(extra: str, needed_for: str) -> Iterator[None]:
    """Turn the import of a missing library of ``extra`` into a :class:`MissingExtraError`.

    A module that is missing for another reason (a bug, a broken environment) is not ours to
    explain, so that error passes through unchanged.
    """
    modules = EXTRA_MODULES[extra]
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in modules:
            raise
        raise MissingExtraError(
            f"{needed_for} needs the {missing!r} package, which is not installed: "
            f"pip install 'shoal[{extra}]'",
            name=exc.name,
        ) from None  # the message says all the original did
