"""Tripwire: capability triggers for AI-safety evaluations."""

__version__ = "0.1.0"
