"""Data containers, label-fraction sampling and conversion of user data."""

from sslcore.data.ssl_data import DataCard, SSLData

__all__ = ["DataCard", "SSLData"]
