"""The sampler ratio is read as the orchestrator and the Rust services read it."""

import pytest

from taskloom.sdk import tracing


def test_the_ratio_defaults_to_the_specs_one_and_reads_the_variable() -> None:
    assert tracing.sampler_ratio({}) == 1.0
    assert tracing.sampler_ratio({"OTEL_TRACES_SAMPLER_ARG": " 0.1 "}) == 0.1
    assert tracing.sampler_ratio({"OTEL_TRACES_SAMPLER_ARG": "0"}) == 0.0


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "ten percent", "nan"])
def test_a_ratio_outside_zero_to_one_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        tracing.sampler_ratio({"OTEL_TRACES_SAMPLER_ARG": raw})


def test_setup_refuses_a_bad_ratio_before_installing_anything() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_SAMPLER_ARG": "2"}
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        tracing.setup("taskloom-test", environ)
    assert not tracing.enabled()
