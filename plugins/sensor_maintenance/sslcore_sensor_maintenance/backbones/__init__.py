"""Sequence encoders for N x C x T sensor windows."""
