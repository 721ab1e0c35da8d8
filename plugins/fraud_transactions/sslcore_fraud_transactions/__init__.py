"""sslcore vertical: card-transaction fraud by learning what "normal" looks like."""

__version__ = "0.1.0"
