"""Driftline: streaming model monitoring."""

__version__ = "0.1.0"
