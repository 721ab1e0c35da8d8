"""Metrics, label-efficiency report and plots."""
