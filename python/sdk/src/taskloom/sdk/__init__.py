"""Taskloom's Python SDK: client, CLI, and helpers shared by the Python services."""
