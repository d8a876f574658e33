"""LLM providers: each streams a chat completion as text pieces and records token usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict


class Message(TypedDict):
    role: str
    content: str


@dataclass(frozen=True)
class GenerationParams:
    temperature: float
    max_tokens: int


@dataclass
class Usage:
    """Tokens of one completion; providers fill it in while they stream."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class ProviderError(Exception):
    """The LLM call failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(Protocol):
    """A chat-completion backend.

    `stream` yields the completion's text in order; by the time the iterator is exhausted
    it has written the final token counts into `usage`.
    """

    name: str

    def stream(
        self,
        messages: Sequence[Message],
        model: str,
        params: GenerationParams,
        usage: Usage,
    ) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
