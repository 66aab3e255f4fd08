"""``shoal console``: the web console served by a process that is a Kafka client (issue 17).

The broker serves the console with an admin API that calls into the broker itself
(:mod:`shoal.server.admin`). This package serves the same pages (the same static files,
:mod:`shoal.server.console`) and the same ``/api/v1`` routes and JSON shapes, answered with
Kafka's Admin, Consumer and Producer APIs (confluent-kafka), so the console runs against any
Kafka cluster: shoal or Apache Kafka. The registry's API is forwarded to ``--registry``.
"""

from shoal.console.web import build_console_app

__all__ = ["build_console_app"]
