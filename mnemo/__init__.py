"""Mnemo: a durable, Letta-compatible server for stateful agents, on Temporal."""

__version__ = "0.1.0"
