"""Benchmarks of pingu in the network lab: failover, capture, start-up, memory and CPU."""
