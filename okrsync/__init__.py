"""okrsync: compute OKR key results from the systems where work happens."""

__version__ = "0.1.0"
