"""Downstream heads of the SSL arm."""
