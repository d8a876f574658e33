"""The contract between the agent loop and every LLM provider.

A provider turns one chat request (messages, model, generation parameters and the tools
the model may call) into an async stream of typed events. The loop consumes them in
order: text and thought deltas are streamed to the client as they come, tool calls are
collected and run, usage is counted. To add a provider (Anthropic, ...), implement
`Provider.stream` so that it yields:

- `TextDelta(text)` for every piece of the answer's visible text, in order;
- `ThoughtDelta(text)` for reasoning the provider exposes (optional);
- `ToolCallDelta(index, id, name, arguments)` while a tool call streams in (optional:
  only for live display; the loop never assembles calls from deltas itself);
- `ToolCallComplete(ToolCall)` once per tool call, with its full JSON arguments, before
  the stream ends; `ToolCall.id` must be unique within the turn (make one up if the API
  has none) and is echoed back in the `tool` message that carries the result;
- `UsageUpdate(prompt_tokens, completion_tokens)` with the turn's token counts, as often
  as the API reports them (each replaces the previous; the last one counts).

Failures raise `ProviderError` with `retryable` set when another attempt may succeed
(429, 5xx, network). A provider retries only before it has yielded anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict


class ToolCallMessage(TypedDict):
    """A tool call in an assistant message, in the OpenAI chat format."""

    id: str
    name: str
    arguments: str  # the JSON text of the arguments, as the model wrote it


class Message(TypedDict):
    """One chat message. `assistant` messages may carry `tool_calls`; `tool` messages
    answer one call by `tool_call_id` (and name the tool in `name`)."""

    role: Literal["system", "user", "assistant", "tool"] | str
    content: str
    tool_calls: NotRequired[list[ToolCallMessage]]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


@dataclass(frozen=True)
class ToolDefinition:
    """A tool offered to the model: its name, what it does and a JSON Schema of its
    arguments (an object schema)."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class GenerationParams:
    temperature: float
    max_tokens: int
    # Provider-specific options from the agent definition and the task input; the
    # simulated provider reads its script here, other providers ignore what they do not know.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    """Tokens of one completion; the loop fills it in from `UsageUpdate` events."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, validated by the tool registry, not by the provider


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThoughtDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str
    name: str
    arguments: str  # the next piece of the arguments' JSON text


@dataclass(frozen=True)
class ToolCallComplete:
    call: ToolCall


@dataclass(frozen=True)
class UsageUpdate:
    prompt_tokens: int
    completion_tokens: int


ProviderEvent = TextDelta | ThoughtDelta | ToolCallDelta | ToolCallComplete | UsageUpdate


class ProviderError(Exception):
    """The LLM call failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(Protocol):
    """A chat-completion backend (see the module docstring for the event contract)."""

    name: str

    def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[ProviderEvent]: ...

    async def aclose(self) -> None: ...


def text_of(events: Sequence[ProviderEvent]) -> str:
    """The visible text of a list of events (for tests and simple callers)."""
    return "".join(e.text for e in events if isinstance(e, TextDelta))
