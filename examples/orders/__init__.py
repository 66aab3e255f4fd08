"""An order-processing saga of four shoal.app services: orders, payments, inventory, shipping.

``run_scenario(broker_url, workdir)`` runs the whole story against any broker URL shoal.app
supports; ``python -m examples.orders`` runs it and prints the timeline. See README.md.
"""

from examples.orders.scenario import Outcome, run_scenario

__all__ = ["Outcome", "run_scenario"]
