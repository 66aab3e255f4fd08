"""The broker process: asyncio Kafka listener, HTTP face, lifecycle."""
