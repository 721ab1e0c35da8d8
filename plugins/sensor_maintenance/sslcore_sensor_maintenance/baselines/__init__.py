"""Labeled-only and label-free baselines on window statistics."""
