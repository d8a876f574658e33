"""Task input shapes accepted by the agent run, and the errors for the rest."""

from __future__ import annotations

import pytest

from taskloom.agents.catalog import load_catalog
from taskloom.agents.runtime import AgentError, build_messages

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
