"""The ACL matrix over the wire: every variant sent by a real connection to a running shoal, so
that each refusal is also encoded in every version the matrix uses and read back as a client
reads it. Until SASL lands the connection is ``User:ANONYMOUS``, so the variants' ACLs name it
instead of the matrix's principal."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Final

import pytest

from shoal.broker.context import RequestContext
from shoal.embedded import EmbeddedBroker
from shoal.protocol import Request, RequestHeader
from shoal.protocol._kio import request_class
from shoal.protocol.build import build
from shoal.security.acl import MATCH_ALL
from tests.broker.acl.harness import binding, with_batch, with_topic_ids
from tests.broker.acl.matrix import (
    AUTHORIZATION_ERRORS,
    PRINCIPAL,
    SUPER_USER,
    VARIANTS,
    Variant,
    find_code,
    read_code,
    renamed,
    variants,
)
from tests.broker.admin.support import on_broker
from tests.server.wire import WireClient

pytestmark = pytest.mark.integration

ANONYMOUS: Final = "User:ANONYMOUS"
_names = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(
        str(tmp_path_factory.mktemp("acl-matrix-wire")),
        authorizer_class_name="standard",
        super_users=SUPER_USER,
    ) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap_servers) as wire:
        yield wire


def _as_super_user(broker: EmbeddedBroker, api_key: int, version: int, values: Any) -> None:
    request = Request(
        RequestHeader(api_key, version, 1, "setup"), build(request_class(api_key, version), values)
    )
    ctx = RequestContext(
        client_id="setup", client_host="127.0.0.1", client_port=1, principal=SUPER_USER
    )
    loop: asyncio.AbstractEventLoop | None = broker._loop
    assert loop is not None
    asyncio.run_coroutine_threadsafe(broker.app.broker.handle(ctx, request), loop).result(30)  # type: ignore[union-attr]


@pytest.mark.parametrize("template", VARIANTS, ids=[v.id for v in VARIANTS])
def test_the_answer_on_the_wire_is_the_documented_one(
    broker: EmbeddedBroker, client: WireClient, template: Variant
) -> None:
    prefix = f"w{next(_names)}-"
    case = renamed(template.case, prefix)
    (variant,) = [v for v in variants(case) if v.label == template.label]
    acls = [
        binding(replace(a, principal=ANONYMOUS) if a.principal == PRINCIPAL else a)
        for a in variant.acls
    ]

    def prepare(core: Any) -> None:
        core.create_topic(prefix + "orders", 1)
        core.acls.delete([MATCH_ALL])
        assert all(o.error_code == 0 for o in core.acls.create(acls))

    on_broker(broker, prepare)

    def topic_id(name: str) -> Any:
        topic = broker.app.broker.topics.get(name)  # type: ignore[union-attr]
        assert topic is not None, name
        return topic.topic_id

    for api_key, version, values in case.setup:
        _as_super_user(broker, api_key, version, with_topic_ids(values, topic_id))
    request = with_topic_ids(with_batch(case.request), topic_id)
    response = client.request(case.api_key, case.version, request)
    if variant.denied is not None:
        assert read_code(response, variant.denied.at) == variant.denied.error, response
    else:
        assert not {find_code(response, n.at) for n in case.needs} & AUTHORIZATION_ERRORS, response
