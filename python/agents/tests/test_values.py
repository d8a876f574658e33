"""The worker's Value conversions agree with protobuf's json_format."""

from __future__ import annotations

import pytest
from google.protobuf import json_format, struct_pb2

from taskloom.agents import values

SAMPLES = [
    "text",
    3.5,
    True,
    None,
    [],
    {},
    {"prompt": "hi", "n": [1, 2.5, None, {"deep": [True, "x"]}], "empty": {}, "list": []},
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_fill_and_to_python_agree_with_json_format(sample: object) -> None:
    ours = struct_pb2.Value()
    values.fill(ours, sample)
    theirs = struct_pb2.Value()
    json_format.ParseDict(sample, theirs)
    assert ours == theirs
    assert values.to_python(theirs) == json_format.MessageToDict(theirs) == sample


def test_what_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError, match="set is not a JSON value"):
        values.fill(struct_pb2.Value(), {"x": {1, 2}})
