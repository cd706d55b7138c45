"""cnnviewer: see what image-classification CNNs see, and compare them honestly."""

__version__ = "0.1.0"
