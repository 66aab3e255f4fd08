"""A transport whose client library is not installed fails at once, in one line naming the pip
extra that installs it. The dev environment has every extra, so each test hides one library
(None in sys.modules makes its import fail as if it were absent); tests/packaging checks the
same against a real install without extras."""

from __future__ import annotations

import sys

import pytest

from shoal.app import App
from shoal.app.extras import MissingExtraError, extra_required
from shoal.app.resilience.idempotency import RedisStore

TRANSPORTS = [
    # (URL, extra, the library it hides, the shoal module that imports it)
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp", "aio_pika", "shoal.app.transports.amqp"),
    ("redis://127.0.0.1:6379", "redis", "redis", "shoal.app.transports.redis_streams"),
    ("nats://127.0.0.1:4222", "nats", "nats", "shoal.app.transports.nats_jetstream"),
]


def hide(monkeypatch: pytest.MonkeyPatch, library: str, *importers: str) -> None:
    """Make ``library`` unimportable, and forget the shoal modules that already imported it."""
    for name in list(sys.modules):
        if name == library or name.startswith(library + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)
    for importer in importers:
        monkeypatch.delitem(sys.modules, importer, raising=False)


@pytest.mark.parametrize(("url", "extra", "library", "importer"), TRANSPORTS)
def test_app_without_the_transport_library_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, extra: str, library: str, importer: str
) -> None:
    hide(
        monkeypatch,
        library,
        importer,
        "shoal.app.transports.redis_delay",
        "shoal.app.transports.amqp_consumer",
    )
    with pytest.raises(MissingExtraError) as caught:
        App(url)
    scheme = url.split(":")[0]
    assert str(caught.value) == (
        f"the {scheme}:// transport needs the {library!r} package, which is not installed: "
        f"pip install 'shoal[{extra}]'"
    )
    assert "\n" not in str(caught.value)
    assert caught.value.__suppress_context__  # one line, not a chain of tracebacks


def test_redis_store_without_redis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "redis")
    with pytest.raises(MissingExtraError, match=r"pip install 'shoal\[redis\]'"):
        RedisStore("redis://127.0.0.1:6379")


def test_a_missing_module_of_no_extra_passes_through_unchanged() -> None:
    # A module missing for another reason (a bug, a broken install) is not explained away.
    with pytest.raises(ModuleNotFoundError) as caught, extra_required("redis", "a test"):
        import shoal_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, MissingExtraError)
    assert caught.value.name == "shoal_no_such_module"


def test_every_transport_loads_when_its_extra_is_installed() -> None:
    # The dev environment has every extra: the guard must not get in the way of a real import.
    for url, *_ in TRANSPORTS:
        assert App(url) is not None
