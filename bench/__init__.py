"""okrsync benchmarks (`python -m bench`, `make bench`): requests, throughput, a peer, recompute, memory."""
