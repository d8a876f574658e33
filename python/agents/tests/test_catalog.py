"""Agent YAML loading and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskloom.agents.catalog import CatalogError, load_catalog, parse_agent

VALID = "name: helper\nprovider: openai\nmodel: gpt-4o-mini\nsystem: Be kind.\n"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_shipped_catalog_has_the_simulated_assistant() -> None:
    catalog = load_catalog()
    assert catalog["assistant"].provider == "simulated"
    assert catalog["assistant"].cache is True


def test_extra_dir_adds_and_overrides_agents(tmp_path: Path) -> None:
    write(tmp_path, "helper.yaml", VALID)
    write(tmp_path, "assistant.yml", "name: assistant\nmodel: sim-2\n")
    catalog = load_catalog([tmp_path])
    assert catalog["helper"].model == "gpt-4o-mini"
    assert catalog["helper"].tools == ()
    assert catalog["assistant"].model == "sim-2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nprovider: gemini\nmodel: m\n", r"provider: Input should be 'simulated'"),
        ("name: x\n", r"model: Field required"),
        ("name: x\nmodel: m\ntemprature: 1\n", r"temprature: Extra inputs are not permitted"),
        ("name: x\nmodel: m\ntemperature: 9\n", r"temperature: Input should be less than or equal"),
        ("name: Bad Name\nmodel: m\n", r"name: String should match pattern"),
        ("- just\n- a list\n", r"must be a YAML mapping, got list"),
        ("name: [unclosed\n", r"not valid YAML"),
    ],
)
def test_invalid_agent_names_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(CatalogError, match=expected) as err:
        parse_agent(path)
    assert str(err.value).startswith(f"{path}: ")


def test_duplicate_names_in_one_dir_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", VALID)
    write(tmp_path, "b.yaml", VALID)
    with pytest.raises(CatalogError, match=r"agent 'helper' is already defined in .*a\.yaml"):
        load_catalog([tmp_path])


def test_missing_dir_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="agents directory does not exist"):
        load_catalog([tmp_path / "nope"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tools: [teleport]", r"tools\.0: Value error, unknown tool 'teleport': not a built-in"),
        (
            "tools: [calculator, {name: calculator}]",
            r"\(root\): Value error, tool 'calculator' is declared twice",
        ),
        ("tools: [{name: 'bad name'}]", r"tools\.0\.name: String should match pattern"),
        (
            "tools: [{name: f, function: m:f, parameters: {type: 12}}]",
            r"tools\.0\.parameters: Value error, not a valid JSON Schema",
        ),
        (
            "tools: [{name: f, function: m:f, parameters: {type: string}}]",
            r"tools\.0\.parameters: Value error, tool arguments must be a JSON object",
        ),
        (
            "tools: [{name: http_fetch, options: {allow_hosts: x, max_bytes: -1}}]",
            r"tools\.0\.options: Value error, .*max_bytes: Input should be greater",
        ),
        ("tools: [{name: calculator, options: {x: 1}}]", r"tool 'calculator' takes no options"),
        ("mcp_servers: [{name: s}]", r"mcp_servers\.0: Value error, .*exactly one of command"),
        ("mcp_servers: [{name: s, url: ftp://x}]", r"mcp_servers\.0\.url: String should match"),
        ("max_iterations: 0", r"max_iterations: Input should be greater than or equal to 1"),
        ("sandbox: {memory_mb: 1}", r"sandbox\.memory_mb: Input should be greater than or equal"),
        ("parallel_tool_calls: maybe", r"parallel_tool_calls: Input should be a valid boolean"),
    ],
)
def test_invalid_tools_name_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", f"name: x\nmodel: m\n{text}\n")
    with pytest.raises(CatalogError, match=expected) as err:
        parse_agent(path)
    assert str(err.value).startswith(f"{path}: invalid agent: ")


def test_tool_declarations_in_every_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tooled.yaml",
        """\
name: tooled
model: m
tools:
  - calculator
  - {name: http_fetch, options: {allow_hosts: [example.com]}}
  - {name: mine, function: "pkg.mod:fn", cacheable: true, cache_ttl_s: 60, timeout_s: 3}
  - {name: plugin, entry_point: plugin}
mcp_servers:
  - {name: files, command: [mcp-files, --root, /data]}
  - {name: search, url: "http://127.0.0.1:9/mcp", tools: [query]}
max_iterations: 4
tool_timeout_s: 12
parallel_tool_calls: false
sandbox: {cpu_s: 2, memory_mb: 128, processes: 4, wall_s: 3, output_bytes: 2048}
""",
    )
    spec = parse_agent(path)
    assert [t.name for t in spec.tools] == ["calculator", "http_fetch", "mine", "plugin"]
    assert spec.tools[1].builtin_options().allow_hosts == ("example.com",)
    assert spec.tools[2].cacheable and spec.tools[2].timeout_s == 3
    assert spec.tool_names()[-2:] == ["mcp:files", "mcp:search"]
    assert (spec.max_iterations, spec.tool_timeout_s, spec.parallel_tool_calls) == (4, 12, False)
    assert spec.sandbox.memory_mb == 128


def test_shipped_toolsmith_uses_the_builtin_tools_on_the_simulated_provider() -> None:
    toolsmith = load_catalog()["toolsmith"]
    assert toolsmith.provider == "simulated"
    assert {t.name for t in toolsmith.tools} == {"calculator", "python"}
    assert toolsmith.simulate["script"][0]["tool_calls"]
