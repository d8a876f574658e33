"""Collections' pure parts: chunking, and the names that keep tenants and families apart
in the vector service (the service itself is exercised in tests/e2e/test_collections.py)."""

from __future__ import annotations

import re

import pytest

from taskloom.sdk.collections import CollectionError, check_name, chunk_words, vector_name

VECTOR_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # the vector service's rule


def test_chunks_overlap_so_no_sentence_is_only_cut() -> None:
    words = [f"w{i}" for i in range(450)]
    chunks = [c.split() for c in chunk_words(" ".join(words), size=200, overlap=40)]
    assert [len(c) for c in chunks] == [200, 200, 130]
    assert chunks[0][-40:] == chunks[1][:40] and chunks[1][-40:] == chunks[2][:40]
    assert chunks[-1][-1] == "w449"
    assert chunk_words("just a few words") == ["just a few words"]


def test_names_keep_tenants_and_families_apart() -> None:
    a, b = vector_name("acme", "docs"), vector_name("globex", "docs")
    assert a != b and a.endswith("-docs") and b.endswith("-docs")
    assert vector_name("acme", "docs", "m") != a
    longest = vector_name("t" * 128, "x" * 40)
    assert VECTOR_NAME.match(longest)


@pytest.mark.parametrize("name", ["", "Docs", "a b", "-x", "x" * 41, "a.b"])
def test_bad_collection_names_are_refused_by_field(name: str) -> None:
    with pytest.raises(CollectionError) as err:
        check_name(name)
    assert err.value.field == "name" and err.value.reason == "INVALID_ARGUMENT"
