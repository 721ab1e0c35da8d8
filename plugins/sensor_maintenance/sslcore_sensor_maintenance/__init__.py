"""sslcore vertical: sensor failure prediction ahead of time (see README.md)."""
