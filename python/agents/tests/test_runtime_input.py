"""Task input shapes accepted by the agent run, and the errors for the rest."""

from __future__ import annotations

import pytest

from taskloom.agents.catalog import load_catalog
from taskloom.agents.runtime import AgentError, build_messages, run_settings

SPEC = load_catalog()["assistant"]


def test_string_and_prompt_inputs_get_the_system_prompt() -> None:
    for task_input in ("hi", {"prompt": "hi"}):
        assert build_messages(SPEC, task_input) == [
            {"role": "system", "content": SPEC.system},
            {"role": "user", "content": "hi"},
        ]


def test_messages_input_keeps_its_own_system_prompt() -> None:
    messages = [{"role": "system", "content": "custom"}, {"role": "user", "content": "hi"}]
    assert build_messages(SPEC, {"messages": messages}) == messages


@pytest.mark.parametrize(
    ("task_input", "expected"),
    [
        (42, "input must be a string"),
        ({"messages": [{"role": "robot", "content": "x"}]}, r"input.messages\[0\] must be"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "no user message"),
    ],
)
def test_bad_input_is_a_non_retryable_agent_error(task_input: object, expected: str) -> None:
    with pytest.raises(AgentError, match=expected) as err:
        build_messages(SPEC, task_input)
    assert err.value.retryable is False


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"max_tokens": 10_000},
            r"input.max_tokens = 10000 is outside the agent's limits \[1, 512\]",
        ),
        ({"temperature": 3}, r"input.temperature = 3 is outside"),
        ({"max_iterations": "many"}, r"input.max_iterations must be int"),
        ({"max_tokens": 1.5}, r"input.max_tokens must be int"),
        ({"simulate": "fast"}, r"input.simulate must be an object"),
    ],
)
def test_overrides_outside_the_agents_limits_name_the_field(overrides: dict, expected: str) -> None:
    with pytest.raises(AgentError, match=expected) as err:
        run_settings(SPEC, {"prompt": "hi", **overrides})
    assert err.value.retryable is False


def test_overrides_within_the_limits_apply() -> None:
    settings = run_settings(SPEC, {"prompt": "hi", "max_tokens": 64.0, "temperature": 0})
    assert settings.params.max_tokens == 64 and isinstance(settings.params.max_tokens, int)
    assert settings.params.temperature == 0.0
    assert settings.max_iterations == SPEC.max_iterations
    assert run_settings(SPEC, "hi").params.max_tokens == SPEC.max_tokens
