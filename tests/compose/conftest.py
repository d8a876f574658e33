"""Fixtures of the tests that drive the running Compose stack of `make compose-test`."""

from __future__ import annotations

import pytest

from .compose_stack import ComposeStack


@pytest.fixture(scope="session")
def compose() -> ComposeStack:
    stack = ComposeStack.from_env()
    if stack is None:
        pytest.skip(
            "drives the Compose stack that `make compose-test` starts "
            "(TASKLOOM_COMPOSE_PROJECT and TASKLOOM_COMPOSE_FILES are not set)"
        )
    return stack
