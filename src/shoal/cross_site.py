"""Refusing state-changing HTTP requests that a page on another site could have sent.

A browser sends some cross-site requests without asking the server first (no CORS preflight):
GET, HEAD and POST with a body typed ``text/plain``, ``application/x-www-form-urlencoded`` or
``multipart/form-data`` (an HTML form), or with no type at all (``fetch`` of a Blob in no-cors
mode). It attaches the basic credentials it remembers for the site, so such a request acts as
the user. Every other method, content type or custom header needs a preflight, which shoal's
HTTP faces never grant. So a state-changing request is refused unless:

- its body, if any, is JSON (``application/json`` or the registry's
  ``application/vnd.schemaregistry[.v1]+json``): 415 otherwise, before anything changes;
- the browser does not say it comes from another site: ``Sec-Fetch-Site`` (set by the
  browser, not by scripts) is ``same-origin`` or ``none``, or, from a browser without it,
  ``Origin`` names the host the request was sent to: 403 otherwise.

Clients that are not browsers (confluent-kafka, the Java client, curl) send neither header and
are unaffected. Shared by the registry, the admin API and ``shoal console``, so it sits below
them all and imports none of them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_MEDIA_TYPES: Final = frozenset(
    {
        "application/json",
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
    }
)
"""Bodies a cross-site page cannot send without a preflight."""
SAME_SITE_FETCHES: Final = frozenset({"same-origin", "none"})
"""``Sec-Fetch-Site`` values of a request this origin's own page (or the user) made."""
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    slug: str
    message: str


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def carries_body(method: str, headers: Mapping[str, str]) -> bool:
    """POST, PUT and PATCH always count as carrying one: an empty form POST is still a form
    POST, and must say it is JSON like any other."""
    if method.upper() in ("POST", "PUT", "PATCH") or "transfer-encoding" in headers:
        return True
    length = headers.get("content-length", "").strip()
    return length.isdigit() and int(length) > 0


def refusal(
    method: str,
    headers: Mapping[str, str],
    accepted_bodies: Collection[str] = JSON_MEDIA_TYPES,
) -> Refusal | None:
    """Why this request must be refused as possibly cross-site, or None. ``headers``: the
    request's, with lower-case names (Starlette's ``request.headers`` is such a mapping)."""
    if method.upper() in SAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site and fetch_site not in SAME_SITE_FETCHES:
        return Refusal(
            403,
            "cross_site_request",
            f"refused: the browser says this request comes from another site "
            f"(Sec-Fetch-Site: {fetch_site})",
        )
    origin = headers.get("origin")
    if not fetch_site and origin is not None and not _same_host(origin, headers.get("host", "")):
        return Refusal(
            403,
            "cross_site_request",
            f"refused: the request comes from another site (Origin: {origin}), not from "
            "this server's own pages",
        )
    if carries_body(method, headers) and media_type(headers) not in accepted_bodies:
        kind = media_type(headers) or "no Content-Type"
        return Refusal(
            415,
            "unsupported_media_type",
            f"request bodies must be {' or '.join(sorted(accepted_bodies))}, not {kind}",
        )
    return None


def _same_host(origin: str, host: str) -> bool:
    """Does ``Origin`` (``scheme://host[:port]``) name the ``Host`` the request went to?
    ``null`` (a sandboxed or opaque origin) never does."""
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        served = urlsplit(f"{parts.scheme}://{host.strip()}")
        served_port = served.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a malformed port
        return False
    if not parts.hostname or parts.scheme not in _DEFAULT_PORTS:
        return False
    return parts.hostname == served.hostname and origin_port == served_port


ADMIN_HEADER: Final = "X-Shoal-Admin"
"""The header the admin API and ``shoal console`` ask of every state-changing request (any
non-blank value): a form cannot set it, and a cross-site ``fetch`` that sets it needs a
preflight."""


def admin_refusal(method: str, headers: Mapping[str, str]) -> Refusal | None:
    """The admin API's rule (both backends: the broker's and ``shoal console``'s): the header
    :data:`ADMIN_HEADER`, then :func:`refusal`."""
    if method.upper() in SAFE_METHODS:
        return None
    if not headers.get(ADMIN_HEADER.lower(), "").strip():
        return Refusal(
            403,
            "csrf_header_missing",
            f"state-changing requests must carry the {ADMIN_HEADER} header (any value)",
        )
    return refusal(method, headers)
