"""The shape of an agent definition (one YAML file), validated by pydantic so that every
error names the field: the agent, its tools, its MCP servers and its sandbox limits."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taskloom.sdk.collections import MAX_TOP_K

# The API's rule for function names (OpenAI and Anthropic agree on it).
TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
BUILTIN_TOOLS = frozenset(
    {"python", "http_fetch", "calculator", "agent", "handoff", "rag", "remember", "memory_search"}
)
MCP_SEPARATOR = "__"  # an MCP tool joins the registry as <server>__<tool>


class ProviderKind(StrEnum):
    SIMULATED = "simulated"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_json_schema(schema: Mapping[str, Any]) -> None:
    """Raise ValueError unless `schema` is a valid JSON Schema of an object."""
    # Imported here: jsonschema takes long to import, and most agents declare no schema.
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(dict(schema))
    except SchemaError as err:
        raise ValueError(f"not a valid JSON Schema: {err.message}") from None
    if schema.get("type", "object") != "object":
        raise ValueError("tool arguments must be a JSON object: use type: object")


class HttpFetchOptions(_Strict):
    allow_hosts: tuple[str, ...] = Field(default=(), description="hosts the tool may reach")
    max_bytes: int = Field(default=1_000_000, ge=1, le=64_000_000)
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class AgentToolOptions(_Strict):
    # The agents this tool may call or hand off to; empty = any agent.
    agents: tuple[str, ...] = ()
    # Time one child task may take, end to end.
    wait_timeout_s: float = Field(default=600.0, gt=0, le=86_400)


class RagOptions(_Strict):
    # The collection searched; empty: the model names one of the tenant's collections.
    collection: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9_-]{0,39})?$")
    top_k: int = Field(default=3, ge=1, le=100)
    # How long a search's result is reused (cache namespace `rag`); 0 = not cached.
    cache_ttl_s: float = Field(default=60.0, ge=0)


class MemorySearchOptions(_Strict):
    top_k: int = Field(default=5, ge=1, le=100)
    # Facts returned at most, counted in tokens (the most similar first).
    token_budget: int = Field(default=500, ge=1, le=100_000)


_BUILTIN_OPTIONS: dict[str, type[_Strict]] = {
    "rag": RagOptions,
    "memory_search": MemorySearchOptions,
    "http_fetch": HttpFetchOptions,
    "agent": AgentToolOptions,
    "handoff": AgentToolOptions,
}


class ToolDecl(_Strict):
    """One tool of an agent: a built-in by name, a Python `module:function`, or an entry
    point of the `taskloom.tools` group."""

    name: str = Field(pattern=TOOL_NAME)
    function: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    entry_point: str | None = Field(default=None, min_length=1)
    description: str = ""
    parameters: dict[str, Any] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    cacheable: bool = False
    cache_ttl_s: float = Field(default=0.0, ge=0)
    replayable: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_schema(value)
        return value

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("function") or info.data.get("entry_point"):
            return value  # a Python tool's options are its own business
        model = _BUILTIN_OPTIONS.get(info.data.get("name", ""))
        if model is None:
            if value:
                raise ValueError(f"tool {info.data.get('name')!r} takes no options")
            return value
        try:
            model.model_validate(value)
        except ValidationError as err:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            ) from None
        return value

    @model_validator(mode="after")
    def _source(self) -> ToolDecl:
        if self.function and self.entry_point:
            raise ValueError(f"tool {self.name!r}: give function or entry_point, not both")
        if not self.function and not self.entry_point and self.name not in BUILTIN_TOOLS:
            raise ValueError(
                f"unknown tool {self.name!r}: not a built-in "
                f"({', '.join(sorted(BUILTIN_TOOLS))}); give function: module:function "
                "or entry_point: NAME"
            )
        return self

    def builtin_options(self) -> Any:
        """The validated options of a built-in tool."""
        model = _BUILTIN_OPTIONS.get(self.name)
        return model.model_validate(self.options) if model is not None else None


class McpServerDecl(_Strict):
    """An MCP server whose tools the agent may call: `command` (stdio) or `url`
    (streamable HTTP)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,32}$")
    command: tuple[str, ...] | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0, le=3600)  # of each call
    start_timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Which of the server's tools to offer; None = all of them.
    tools: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _transport(self) -> McpServerDecl:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {self.name!r}: give exactly one of command or url")
        return self


class SandboxLimits(_Strict):
    """Limits of one `python` tool call."""

    cpu_s: int = Field(default=5, ge=1, le=600)
    memory_mb: int = Field(default=256, ge=32, le=16_384)
    processes: int = Field(default=16, ge=1, le=4096)
    wall_s: float = Field(default=10.0, gt=0, le=3600)
    output_bytes: int = Field(default=65_536, ge=1024, le=16_000_000)


class SemanticCacheOptions(_Strict):
    """Answer a first turn from the cache when an earlier question of the same agent,
    model, parameters, tools, system prompt and tenant is this similar (cosine)."""

    enabled: bool = False
    threshold: float = Field(default=0.95, gt=0, le=1)


class MemoryOptions(_Strict):
    """The agent's long-term memory. Recall without a tool call: before the first LLM
    call, its `auto_recall` memories most similar to the user's input (at least `min_score`
    cosine, within `token_budget` tokens) go into the system prompt; 0 (the default) turns
    it off. Retention: facts older than `max_age_s` or less important than
    `min_importance` are dropped (0 keeps every fact)."""

    auto_recall: int = Field(default=0, ge=0, le=MAX_TOP_K)
    min_score: float = Field(default=0.3, ge=-1, le=1)
    token_budget: int = Field(default=500, ge=1, le=100_000)
    max_age_s: float = Field(default=0, ge=0, le=100 * 365 * 86_400)
    min_importance: float = Field(default=0, ge=0, le=1)


class AgentSpec(_Strict):
    """One agent as written in YAML."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    description: str = ""
    # The endpoint the agent's LLM calls go to (see taskloom.agents.endpoints): one of the
    # worker's configured endpoints, or an implicit one (simulated, openai, anthropic).
    provider: str = Field(
        default=ProviderKind.SIMULATED.value, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$"
    )
    model: str = Field(min_length=1)
    system: str = ""
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=1, le=1_000_000)
    # Tokens the model reads at most: a session's history is trimmed to fit it.
    context_window: int = Field(default=8192, ge=1, le=10_000_000)
    semantic_cache: SemanticCacheOptions = Field(default_factory=SemanticCacheOptions)
    memory: MemoryOptions = Field(default_factory=MemoryOptions)
    cache: bool = True
    tools: tuple[ToolDecl, ...] = ()
    mcp_servers: tuple[McpServerDecl, ...] = ()
    max_iterations: int = Field(default=8, ge=1, le=1000)
    tool_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    parallel_tool_calls: bool = True
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    # The simulated provider's script (see providers/simulated.py); other providers ignore it.
    simulate: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tools", mode="before")
    @classmethod
    def _names_to_decls(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _unique(self) -> AgentSpec:
        names = [t.name for t in self.tools]
        servers = [s.name for s in self.mcp_servers]
        for kind, values in (("tool", names), ("MCP server", servers)):
            if dup := sorted({v for v in values if values.count(v) > 1}):
                raise ValueError(f"{kind} {dup[0]!r} is declared twice")
        return self

    def tool_names(self) -> list[str]:
        """What the agent offers, for the catalog listing (MCP servers as `mcp:<name>`)."""
        return [t.name for t in self.tools] + [f"mcp:{s.name}" for s in self.mcp_servers]
