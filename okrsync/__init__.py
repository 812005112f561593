"""okrsync: compute OKR key results from the systems where work happens."""

from okrsync.domain import VERSION as __version__

__all__ = ["__version__"]
