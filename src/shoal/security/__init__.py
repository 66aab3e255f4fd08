"""Who a client is and what it may do: SASL mechanisms and credentials, principals from
certificates, ACLs and quotas.

Sans-IO, as the protocol layer is: no sockets, no event loop. The server runs the
authentication exchanges these modules define; the broker asks them what a principal may do.
Durable state (credentials, ACLs, quotas) is kept through :mod:`shoal.storage.fs`.
"""
