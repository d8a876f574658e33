"""LLM providers. The contract every provider implements lives in `providers.base`;
it is re-exported here for the agent loop and the tests."""

from taskloom.agents.providers.base import (
    GenerationParams,
    Message,
    Provider,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    ToolCall,
    ToolCallComplete,
    ToolCallDelta,
    ToolCallMessage,
    ToolDefinition,
    Usage,
    UsageUpdate,
    text_of,
)

__all__ = [
    "GenerationParams",
    "Message",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "TextDelta",
    "ThoughtDelta",
    "ToolCall",
    "ToolCallComplete",
    "ToolCallDelta",
    "ToolCallMessage",
    "ToolDefinition",
    "Usage",
    "UsageUpdate",
    "text_of",
]
