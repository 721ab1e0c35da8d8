"""A minimal sslcore vertical, as a template for plugin authors (docs/plugin_authors.md)."""
