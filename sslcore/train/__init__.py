"""Pretraining and supervised training loops, checkpoints and collapse diagnostics."""
