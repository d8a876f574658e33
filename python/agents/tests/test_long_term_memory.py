"""Long-term memory's pure parts: recalled facts stop at the token budget, and each agent
has its own memory collection name (the vector service is exercised end to end in
tests/e2e/test_collections.py)."""

from __future__ import annotations

from taskloom.agents.memory.long_term import memory_name, within_budget
from taskloom.agents.tokenizer import count_text


def test_recalled_facts_stop_at_the_token_budget() -> None:
    facts = [{"fact": f"fact number {i} " + "word " * 10} for i in range(5)]
    one = count_text(facts[0]["fact"])
    assert within_budget(facts, one * 2) == facts[:2]
    assert within_budget(facts, one - 1) == []
    assert within_budget(facts, 10_000) == facts


def test_each_agent_has_its_own_memory() -> None:
    assert memory_name("keeper") != memory_name("keeper.v2")
    assert len(memory_name("a" * 63)) == 24
