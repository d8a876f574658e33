"""The configuration layers: defaults → YAML file section → TASKLOOM_* env → flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from taskloom.sdk import config


class DemoSettings(config.ServiceSettings):
    """A service for these tests."""

    config_section: ClassVar[str] = "cache"

    addr: str = Field("127.0.0.1:1", description="where it listens")
    workers: int = Field(2, ge=1, description="how many")
    ratio: float = Field(0.5, description="a share")
    store_url: str = Field("", description="a URL that may hold a password")
    dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list, description="dirs")
    token: SecretStr = Field(SecretStr(""), description="a secret")

    @field_validator("dirs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split(":") if isinstance(value, str) else value


def load(argv: list[str]) -> DemoSettings:
    return config.load(DemoSettings, argv, prog="demo")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_each_layer_overrides_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(
        tmp_path / "taskloom.yaml",
        "cache:\n  addr: file:1\n  workers: 3\n  ratio: 0.25\n"
        "gateway:\n  http_addr: elsewhere:8000\n",
    )
    monkeypatch.setenv("TASKLOOM_WORKERS", "4")
    monkeypatch.setenv("TASKLOOM_RATIO", "0.75")
    settings = load(["--config", str(file), "--ratio", "0.9"])
    assert settings.addr == "file:1"  # file over default
    assert settings.workers == 4  # env over file
    assert settings.ratio == 0.9  # flag over env
    assert settings.printable()["config_file"] == str(file)


def test_the_file_can_come_from_taskloom_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(write(tmp_path / "c.yaml", "cache:\n  workers: 7\n")))
    assert load([]).workers == 7
    assert DemoSettings().workers == 7  # built directly, too


def test_a_file_without_this_services_section_leaves_the_defaults(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", "worker:\n  concurrency: 3\n")
    assert load(["--config", str(file)]).workers == 2


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("cache:\n  wokers: 3\n", "cache.wokers is not a setting (did you mean workers?)"),
        ("cahce:\n  workers: 3\n", "unknown section cahce"),
        ("cache: [1, 2]\n", "section cache must be a mapping"),
        ("- just\n- a list\n", "must be a mapping of sections"),
        ("cache: {workers: 3\n", "not valid YAML"),
        ("cache:\n  workers: 0\n", "workers (--workers, TASKLOOM_WORKERS, cache.workers"),
    ],
)
def test_a_bad_file_exits_2_naming_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    file = write(tmp_path / "c.yaml", text)
    with pytest.raises(SystemExit) as exited:
        load(["--config", str(file)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert named in err


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        load(["--config", str(tmp_path / "absent.yaml")])
    assert exited.value.code == 2
    assert "absent.yaml: cannot read it" in capsys.readouterr().err


def test_a_bad_env_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKLOOM_WORKERS", "many")
    with pytest.raises(SystemExit) as exited:
        load([])
    assert exited.value.code == 2
    assert "workers (--workers, TASKLOOM_WORKERS" in capsys.readouterr().err


def test_check_config_prints_the_masked_settings_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKLOOM_TOKEN", "s3cret-token")
    file = write(tmp_path / "c.yaml", "cache:\n  store_url: redis://u:pw@db:6379/0\n")
    with pytest.raises(SystemExit) as exited:
        load(["--config", str(file), "--check-config"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["token"] == "***"
    assert printed["store_url"] == "redis://u:***@db:6379/0"
    assert "s3cret" not in out and "pw@" not in out
    assert "the configuration is valid" in err


def test_secrets_are_refused_as_flags_and_come_from_env_or_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        load(["--token", "on-argv"])
    assert exited.value.code == 2
    file = write(tmp_path / "c.yaml", "cache:\n  token: from-file\n")
    settings = load(["--config", str(file)])
    assert settings.token.get_secret_value() == "from-file"
    assert settings.printable()["token"] == "***"
    assert DemoSettings().printable()["token"] == ""


def test_help_names_every_flag_env_variable_and_secret(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        load(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--config", "--check-config", "--addr", "--workers", "--dirs"):
        assert flag in text
    for env in ("TASKLOOM_CONFIG", "TASKLOOM_WORKERS", "TASKLOOM_TOKEN"):
        assert env in text
    assert "--token" not in text


def test_list_flags_repeat_and_replace_the_env_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLOOM_DIRS", "/a:/b")
    assert load([]).dirs == [Path("/a"), Path("/b")]
    assert load(["--dirs", "/c", "--dirs", "/d"]).dirs == [Path("/c"), Path("/d")]


@pytest.mark.parametrize(
    ("name", "value", "printed"),
    [
        ("TASKLOOM_OPENAI_API_KEY", "sk-1", "***"),
        ("TASKLOOM_API_KEYS", "k=t", "***"),
        ("TASKLOOM_SOME_TOKEN", "", ""),
        ("TASKLOOM_REDIS_URL", "redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("TASKLOOM_REDIS_URL", "redis://h:1/0", "redis://h:1/0"),
        ("TASKLOOM_AGENTS_DIR", "/srv/agents", "/srv/agents"),
    ],
)
def test_environment_values_are_masked_by_name_and_url(name: str, value: str, printed: str) -> None:
    assert config.mask_env_value(name, value) == printed


class CheckedSettings(DemoSettings):
    def check(self) -> None:
        if self.addr == "nowhere:0":
            raise config.ConfigError("addr: nowhere:0 is not reachable")


def test_check_config_runs_the_services_deeper_check(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        config.load(CheckedSettings, ["--addr", "nowhere:0", "--check-config"], prog="demo")
    assert exited.value.code == 2
    assert "addr: nowhere:0 is not reachable" in capsys.readouterr().err
    # A plain start leaves the deeper checks to the service itself.
    assert config.load(CheckedSettings, ["--addr", "nowhere:0"], prog="demo").addr == "nowhere:0"
