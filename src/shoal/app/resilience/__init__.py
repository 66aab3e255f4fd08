"""What keeps a subscriber going when records or dependencies fail: retries (in place and
through retry topics), the dead-letter queue, circuit breakers and idempotent consumers.

The policies users declare (:class:`Retry`, :class:`Breaker`) are re-exported by
:mod:`shoal.app`; the runner applies them record by record.
"""
