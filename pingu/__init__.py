"""pingu: a Linux multi-uplink failover routing daemon, successor of py-pingu."""

__version__ = "0.1.0"
