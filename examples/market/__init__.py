"""The market-data example: a feed of trades and quotes, OHLC bars and VWAP on event-time
windows, a latest-quote table in a compacted topic, spread and price alerts from a
stream-table join, and a latency monitor (``python -m examples.market``; see README.md)."""
