"""The SDK's models name the fields the gateway's OpenAPI document gives each schema: a
field added to or renamed in the gateway fails here until the SDK follows."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from taskloom.gateway.app import create_app
from taskloom.gateway.config import Settings
from taskloom.sdk import models

PAIRS = {
    models.Task: "TaskOut",
    models.TaskPage: "TaskList",
    models.TaskError: "TaskErrorOut",
    models.Usage: "UsageOut",
    models.TaskRequest: "TaskBatchItem",
    models.Workflow: "WorkflowOut",
    models.WorkflowPage: "WorkflowList",
    models.WorkflowSpec: "WorkflowSpecOut",
    models.StepState: "StepStateOut",
    models.Agent: "AgentOut",
    models.AgentLimits: "AgentLimitsOut",
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    document = create_app(Settings()).openapi()
    found: dict[str, Any] = document["components"]["schemas"]
    return found


@pytest.mark.parametrize("model", PAIRS, ids=lambda m: m.__name__)
def test_the_model_has_the_gateways_fields(model: type[BaseModel], schemas: dict[str, Any]) -> None:
    schema = schemas[PAIRS[model]]
    assert set(model.model_fields) == set(schema["properties"])
    # What the gateway always sends, the model requires.
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert required <= set(schema.get("required", []))
