"""Self-supervised objectives for sensor windows."""
