"""sslcore vertical: multispectral land cover (Sentinel-2, EuroSAT classes) with DINO."""

__version__ = "0.1.0"
