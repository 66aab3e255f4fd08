"""Runnable examples of shoal.app services (each a package: ``python -m examples.<name>``)."""
