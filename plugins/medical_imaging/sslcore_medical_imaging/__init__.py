"""sslcore vertical: chest X-ray pneumonia, SSL on unlabeled radiographs."""

__version__ = "0.1.0"
