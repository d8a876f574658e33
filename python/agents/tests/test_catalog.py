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
        # An endpoint name; whether the worker has that endpoint is checked at its start.
        ("name: x\nprovider: Gemini Pro\nmodel: m\n", r"provider: String should match"),
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
