"""The admin API: JSON over HTTP under ``/api/v1/`` for what the console does (issue 17).

A thin layer over the broker: each route checks the caller's principal with the broker's
authorizer (as the Kafka handler for the same operation does) and calls the broker function
that handler calls. Routes run on the HTTP server's event loop, which is the broker's.
"""

from shoal.server.admin.routes import build_admin_app

__all__ = ["build_admin_app"]
