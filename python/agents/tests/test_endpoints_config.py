"""Endpoint configuration: validation that names the endpoint and field, the implicit
endpoints agents may name without configuring anything, aliases and prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskloom.agents.endpoints import (
    EndpointConfigError,
    EndpointKind,
    build_endpoints,
    parse_endpoints,
)


def test_implicit_endpoints_cover_the_older_provider_names() -> None:
    endpoints = build_endpoints({}, {"simulated": ["a"], "openai": ["b"]}, {})
    assert endpoints["simulated"].kind == EndpointKind.SIMULATED
    assert endpoints["openai"].kind == EndpointKind.OPENAI
    assert "anthropic" not in endpoints  # only built when an agent uses it
    # The simulated model is free, and says so with a known price of zero.
    assert endpoints["simulated"].config.price("sim-1") is not None


def test_the_implicit_anthropic_endpoint_needs_its_key_variable() -> None:
    with pytest.raises(EndpointConfigError, match=r"used by writer.*ANTHROPIC_API_KEY is not set"):
        build_endpoints({}, {"anthropic": ["writer"]}, {})
    made = build_endpoints({}, {"anthropic": ["writer"]}, {"ANTHROPIC_API_KEY": "sk-ant-x"})
    assert made["anthropic"].api_key.get_secret_value() == "sk-ant-x"
    assert "sk-ant-x" not in repr(made["anthropic"])


def test_keys_come_from_the_files_their_file_variables_name(tmp_path: Path) -> None:
    # Compose and Kubernetes mount the provider keys as files (README, "Run with Docker Compose").
    (tmp_path / "anthropic").write_text("sk-ant-from-file\n")
    (tmp_path / "local").write_text("sk-local-from-file")
    config = parse_endpoints(
        {"local": {"kind": "openai", "base_url": "http://local/v1", "api_key_env": "LOCAL_KEY"}}
    )
    made = build_endpoints(
        config,
        {"anthropic": ["writer"], "local": ["reader"]},
        {
            "ANTHROPIC_API_KEY_FILE": str(tmp_path / "anthropic"),
            "LOCAL_KEY_FILE": str(tmp_path / "local"),
        },
    )
    assert made["anthropic"].api_key.get_secret_value() == "sk-ant-from-file"
    assert made["local"].api_key.get_secret_value() == "sk-local-from-file"
    with pytest.raises(EndpointConfigError, match=r"endpoints.local.api_key_env: .*cannot read"):
        build_endpoints(config, {}, {"LOCAL_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(EndpointConfigError, match=r"anthropic.*not both") as refused:
        build_endpoints(
            {},
            {"anthropic": ["writer"]},
            {
                "ANTHROPIC_API_KEY": "sk-ant-env",
                "ANTHROPIC_API_KEY_FILE": str(tmp_path / "anthropic"),
            },
        )
    assert "sk-ant" not in str(refused.value)


def test_a_configured_endpoint_replaces_an_implicit_one_of_its_name() -> None:
    config = parse_endpoints({"openai": {"kind": "openai", "base_url": "http://local/v1"}})
    assert build_endpoints(config, {}, {})["openai"].config.base_url == "http://local/v1"


def test_fallbacks_must_exist_and_must_not_loop() -> None:
    loop = parse_endpoints(
        {
            "a": {"kind": "simulated", "fallback": {"endpoint": "b"}},
            "b": {"kind": "simulated", "fallback": {"endpoint": "a"}},
        }
    )
    with pytest.raises(EndpointConfigError, match=r"the fallbacks loop \(a -> b -> a\)"):
        build_endpoints(loop, {}, {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"Bad Name": {"kind": "simulated"}}, "not a valid endpoint name"),
        ({"x": {"kind": "openai", "base_url": "ftp://x"}}, "endpoints.x: base_url"),
        ({"x": {"kind": "simulated", "api_key_env": "not a var"}}, "endpoints.x: api_key_env"),
        ({"x": {"kind": "simulated", "limits": {"concurrent": -1}}}, "limits.concurrent"),
        ({"x": {"kind": "simulated", "colour": "red"}}, "endpoints.x: colour: Extra inputs"),
        (
            {
                "x": {
                    "kind": "simulated",
                    "simulated": {"failures": {"rate_429": 0.7, "rate_5xx": 0.7}},
                }
            },
            "must be at most 1",
        ),
    ],
)
def test_bad_configuration_names_the_endpoint_and_field(raw: dict, expected: str) -> None:
    with pytest.raises(EndpointConfigError, match=expected):
        parse_endpoints(raw)


def test_aliases_resolve_and_prices_are_found_by_name_alias_or_star() -> None:
    config = parse_endpoints(
        {
            "x": {
                "kind": "openai",
                "base_url": "http://x/v1",
                "models": {"fast": "gpt-small"},
                "prices": {"gpt-small": {"input": 1, "output": 2}, "*": {"input": 5, "output": 5}},
            }
        }
    )["x"]
    assert config.resolve_model("fast") == "gpt-small"
    assert config.price("fast") == config.price("gpt-small")
    assert config.price("other").input == 5  # type: ignore[union-attr]
