"""diplomat: the course office for city-network training."""

__version__ = "0.1.0"
