"""unipost-exporter: UniPost account metrics for Prometheus, polled in the background."""

__version__ = "0.1.0"
