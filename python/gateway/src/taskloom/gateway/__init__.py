"""Taskloom's REST gateway: a FastAPI app that validates and authenticates HTTP requests,
forwards them to the Go orchestrator over gRPC, and streams task events as SSE or WebSocket.
"""
