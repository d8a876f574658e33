"""Agent memory: a task's session conversation (sessions.py)."""
