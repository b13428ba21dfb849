"""synthrank: a domain corpus in, a trained reranker out, with no human labels.

The core package holds every piece of the method and imports no framework
(Haystack, PyTerrier, Elasticsearch); the adapters and the CLI wrap it.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
