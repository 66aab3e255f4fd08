"""The broker's metrics core: fixed-bucket histograms and a Prometheus text writer.

Below every layer (like :mod:`shoal.clock`): storage, the broker and the server keep their
figures in these objects, and :mod:`shoal.server.metrics` writes them out when scraped.
"""

from shoal.metrics.core import Histogram, bucket_bounds
from shoal.metrics.exposition import CONTENT_TYPE, Exposition

__all__ = ["CONTENT_TYPE", "Exposition", "Histogram", "bucket_bounds"]
