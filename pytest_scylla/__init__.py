"""pytest-scylla: measure AI coding agents with pytest."""

__version__ = "0.1.0"
