"""Token estimates for the tokens-per-minute limits, made before a call (and corrected by
the usage the provider reports after it).

tiktoken's `cl100k_base` encoding, with its vocabulary shipped in this package
(`data/cl100k_base.tiktoken.gz`, checked against tiktoken's own hash of the file): tiktoken
would download it at first use, and nothing is downloaded at run time. One encoding serves
every model: an estimate only has to be close, and the reported usage corrects it.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from collections.abc import Sequence
from pathlib import Path

import tiktoken

from taskloom.agents.providers.base import Message, ToolDefinition

VOCABULARY = Path(__file__).parent / "data" / "cl100k_base.tiktoken.gz"
# tiktoken_ext.openai_public's expected hash of cl100k_base.tiktoken, and its split pattern.
_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
# What the chat format adds per message (role, separators), as OpenAI's cookbook counts it.
_PER_MESSAGE = 4
_PER_REPLY = 3


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The encoding, loaded once per process (about a quarter of a second)."""
    data = gzip.decompress(VOCABULARY.read_bytes())
    if hashlib.sha256(data).hexdigest() != _SHA256:
        raise RuntimeError(f"{VOCABULARY} is damaged: its hash is not cl100k_base's")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens=_SPECIAL
    )


def count_text(text: str) -> int:
    # Special tokens in user text are counted as text, never refused.
    return len(encoding().encode(text, disallowed_special=()))


def estimate_prompt_tokens(
    messages: Sequence[Message], tools: Sequence[ToolDefinition] = ()
) -> int:
    """The prompt tokens a chat request will use, roughly."""
    total = _PER_REPLY
    for message in messages:
        total += _PER_MESSAGE + count_text(message["content"])
        for call in message.get("tool_calls", ()):
            total += count_text(call["name"]) + count_text(call["arguments"])
    for tool in tools:
        total += count_text(tool.name) + count_text(tool.description)
        total += count_text(str(dict(tool.parameters)))
    return total
