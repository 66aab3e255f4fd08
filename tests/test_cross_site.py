"""shoal.cross_site's rule on its own: which requests a page on another site could have sent."""

from __future__ import annotations

import pytest

from shoal.cross_site import admin_refusal, refusal

JSON = {"content-type": "application/json", "content-length": "2"}


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:8081", "127.0.0.1:8081", True),
        ("https://console.example", "console.example:443", True),
        ("http://console.example", "console.example", True),
        ("HTTP://Console.Example:80", "console.example", True),
        ("http://console.example:8081", "console.example:8082", False),
        ("https://127.0.0.1:8081", "127.0.0.1:8081", True),
        ("http://evil.example", "console.example", False),
        ("null", "console.example", False),
        ("http://console.example:notaport", "console.example", False),
        ("file://", "console.example", False),
    ],
)
def test_origin_must_name_the_host_asked(origin: str, host: str, same: bool) -> None:
    refused = refusal("POST", JSON | {"origin": origin, "host": host})
    assert (refused is None) is same


def test_sec_fetch_site_decides_when_present() -> None:
    for site in ("same-origin", "none"):
        assert refusal("DELETE", {"sec-fetch-site": site, "origin": "http://other"}) is None
    for site in ("same-site", "cross-site"):
        refused = refusal("DELETE", {"sec-fetch-site": site})
        assert refused is not None and refused.status == 403


def test_bodies_must_be_json_and_reads_are_never_refused() -> None:
    assert refusal("GET", {"content-type": "text/plain", "origin": "http://evil"}) is None
    for method in ("POST", "PUT", "PATCH"):
        refused = refusal(method, {"content-length": "0"})
        assert refused is not None and refused.status == 415, method
    assert refusal("DELETE", {}) is None  # no body: nothing to type
    refused = refusal("DELETE", {"content-length": "5", "content-type": "text/plain"})
    assert refused is not None and refused.status == 415


def test_the_admin_header_must_be_non_blank() -> None:
    for value in ("", "   ", "\t"):
        refused = admin_refusal("POST", JSON | {"x-shoal-admin": value})
        assert refused is not None and refused.slug == "csrf_header_missing"
    assert admin_refusal("POST", JSON | {"x-shoal-admin": "console"}) is None
