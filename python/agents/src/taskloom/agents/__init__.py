"""Taskloom's agent worker: runs agent tasks that the orchestrator assigns over a gRPC stream."""

__version__ = "0.1.0"
