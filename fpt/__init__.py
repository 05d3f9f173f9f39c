"""fpt: frozen pretrained transformers for cross-modal transfer."""

__version__ = "0.1.0"
