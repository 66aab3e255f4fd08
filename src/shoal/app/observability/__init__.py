"""Seeing what a running app does: Prometheus metrics, OpenTelemetry tracing, the health and
metrics HTTP endpoints, and the AsyncAPI document of what it consumes and produces."""
