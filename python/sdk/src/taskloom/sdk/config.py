"""One configuration story for Taskloom's Python services, in layers that each override the
one before: embedded defaults → an optional YAML file (`--config` or `TASKLOOM_CONFIG`) →
`TASKLOOM_*` environment variables → command-line flags.

One YAML file can hold the whole stack: every service reads only its own top-level section
(`gateway:`, `worker:`, `orchestrator:`, `cache:`, `metrics:`, `vector:`), keyed by the
setting's name (`worker: {concurrency: 8}`). Secrets come from the environment or the file,
never from flags (argv is visible to every user of the machine), and print masked.

The file and environment layers are pydantic-settings sources. The flags are argparse, built
from the settings' fields, rather than pydantic-settings' CLI source, because that source
offers secrets as flags and names flags after environment aliases.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import AliasChoices, BaseModel, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "TASKLOOM_"
CONFIG_ENV = "TASKLOOM_CONFIG"
# The top-level sections of the one configuration file, one per service.
SECTIONS = ("gateway", "worker", "orchestrator", "cache", "metrics", "vector")
MASK = "***"
# Environment variables whose names contain these hold secrets (the launcher prints them).
_SECRET_NAME_PARTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")

_config_file: ContextVar[Path | None] = ContextVar("taskloom_config_file", default=None)


def _current_config_file() -> Path | None:
    """The file being read: the one `load` was given, else the one TASKLOOM_CONFIG names."""
    given = _config_file.get()
    if given is not None:
        return given
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else None


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file, section or setting."""


def is_secret_env(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    upper = name.upper()
    return any(part in upper for part in _SECRET_NAME_PARTS)


def mask_url_password(value: str) -> str:
    """`redis://user:pw@host` → `redis://user:***@host`; other values unchanged."""
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
    except ValueError:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


def mask_env_value(name: str, value: str) -> str:
    """An environment variable's value as it may be printed."""
    if is_secret_env(name):
        return MASK if value else ""
    return mask_url_password(value)


def read_config_file(path: Path) -> dict[str, Any]:
    """The whole file as a mapping of sections; an error names what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read it: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of sections, not a list or text")
    unknown = sorted(str(key) for key in data if key not in SECTIONS)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown section {', '.join(unknown)} "
            f"(the sections are {', '.join(SECTIONS)})"
        )
    return data


def _field_env_names(name: str, field: FieldInfo) -> list[str]:
    if isinstance(field.validation_alias, AliasChoices):
        return [c for c in field.validation_alias.choices if isinstance(c, str) and c.isupper()]
    return [ENV_PREFIX + name.upper()]


def _is_secret_type(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret_type(arg) for arg in typing.get_args(annotation))


class ServiceSettings(BaseSettings):
    """Base of each Python service's one typed settings object.

    A subclass names its section of the configuration file in `config_section` and may
    list secrets that are not `SecretStr` in `secret_fields`.
    """

    # Unknown TASKLOOM_* variables are ignored on purpose: the launcher passes the user's
    # settings of every service to each of them.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_by_name=True)

    config_section: ClassVar[str] = ""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    _config_path: Path | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        self._config_path = _current_config_file()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: flags (passed as init arguments), environment, file.
        path = _current_config_file()
        if path is None:
            return init_settings, env_settings
        section = cls.file_section(read_config_file(path), path)
        return init_settings, env_settings, InitSettingsSource(settings_cls, section)

    @classmethod
    def file_section(cls, data: Mapping[str, Any], path: Path) -> dict[str, Any]:
        """This service's section of a configuration file, its keys checked."""
        section = data.get(cls.config_section)
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: section {cls.config_section} must be a mapping")
        names = list(cls.model_fields)
        for key in section:
            if key not in cls.model_fields:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(
                    f"config file {path}: {cls.config_section}.{key} is not a setting{hint}"
                )
        return dict(section)

    def check(self) -> None:
        """What `--check-config` verifies beyond each value (the files a setting names, ...);
        raises ConfigError naming the setting. Services override it; nothing by default."""

    @classmethod
    def is_secret(cls, name: str) -> bool:
        return name in cls.secret_fields or _is_secret_type(cls.model_fields[name].annotation)

    @classmethod
    def env_names(cls, name: str) -> list[str]:
        """The environment variables a setting reads, in order of precedence."""
        return _field_env_names(name, cls.model_fields[name])

    def printable(self) -> dict[str, Any]:
        """The settings as JSON-ready values, secrets masked, as printed at start."""
        out = self.model_dump(mode="json")
        for name in type(self).model_fields:
            if self.is_secret(name):
                out[name] = MASK if getattr(self, name) else ""
            elif isinstance(out[name], str):
                out[name] = mask_url_password(out[name])
        out["config_file"] = str(self._config_path) if self._config_path else None
        return out


S = TypeVar("S", bound=ServiceSettings)


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_flag(parser: argparse.ArgumentParser, name: str, field: FieldInfo, help_text: str) -> None:
    # Values stay text: pydantic converts them, so a bad value is reported like one from
    # the environment or the file, naming the setting.
    annotation = field.annotation
    origin = typing.get_origin(annotation)
    flag, metavar = _flag(name), name.upper()
    if annotation is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
    elif NoDecode in field.metadata and origin in (list, tuple):
        parser.add_argument(flag, action="append", metavar=metavar, help=help_text)
    elif NoDecode not in field.metadata and (
        origin in (dict, list, tuple)
        or (isinstance(annotation, type) and issubclass(annotation, BaseModel))
    ):
        parser.add_argument(flag, type=json.loads, metavar="JSON", help=help_text)
    else:
        parser.add_argument(flag, metavar=metavar, help=help_text)


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None or field.default is PydanticUndefined:
        return ""
    if field.default in (None, ""):
        return ""
    return f" (default: {field.default})"


def build_parser(
    cls: type[ServiceSettings], prog: str, description: str
) -> argparse.ArgumentParser:
    """Flags for every setting but the secrets, each naming its environment variables."""
    secrets = [name for name in cls.model_fields if cls.is_secret(name)]
    env_only = "; ".join(
        f"{' or '.join(cls.env_names(name))}: {cls.model_fields[name].description}"
        for name in secrets
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"{description} Settings come from defaults, then the `{cls.config_section}` "
        f"section of the YAML file given by --config or {CONFIG_ENV}, then TASKLOOM_* "
        "environment variables (unknown ones are ignored), then these flags.",
        epilog=f"Secrets, from the environment or the file only: {env_only}." if secrets else None,
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML file with a `{cls.config_section}:` section [env: {CONFIG_ENV}]",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print it (secrets masked) and exit",
    )
    for name, field in cls.model_fields.items():
        if name in secrets:
            continue
        env = " | ".join(cls.env_names(name))
        text = f"{field.description}{_default_text(field)} [env: {env}]".replace("%", "%%")
        _add_flag(parser, name, field, text)
    return parser


def describe_validation_error(cls: type[ServiceSettings], err: ValidationError) -> str:
    """Each problem with the setting it concerns, by every name it can be given."""
    problems = []
    for error in err.errors():
        key = str(error["loc"][0]) if error["loc"] else ""
        name = next(
            (n for n, f in cls.model_fields.items() if key == n or key in cls.env_names(n)), key
        )
        if name in cls.model_fields:
            where = ", ".join(
                [
                    _flag(name) if not cls.is_secret(name) else "",
                    *cls.env_names(name),
                    f"{cls.config_section}.{name} in the config file",
                ]
            ).lstrip(", ")
            problems.append(f"{name} ({where}): {error['msg']}")
        else:
            problems.append(f"{key or '(settings)'}: {error['msg']}")
    return "; ".join(problems)


def load(cls: type[S], argv: Sequence[str] | None, *, prog: str, description: str = "") -> S:
    """The settings from every layer. `--help` and `--check-config` print and exit 0; an
    invalid configuration prints what is wrong, naming the setting, and exits 2."""
    parser = build_parser(cls, prog, description or (cls.__doc__ or "").strip())
    flags = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    config = flags.pop("config", None)
    check_only = flags.pop("check_config", False)
    try:
        settings = from_layers(cls, config, flags)
        if check_only:
            settings.check()
    except ValidationError as err:
        parser.exit(2, f"{prog}: invalid configuration: {describe_validation_error(cls, err)}\n")
    except ConfigError as err:
        parser.exit(2, f"{prog}: invalid configuration: {err}\n")
    if check_only:
        print(json.dumps(settings.printable(), indent=2))
        parser.exit(0, f"{prog}: the configuration is valid\n")
    return settings


def from_layers(cls: type[S], config_file: Path | None, flags: Mapping[str, Any]) -> S:
    """Build the settings from defaults, `config_file` (None: the one TASKLOOM_CONFIG
    names, if any), the environment and `flags`."""
    with _reading(config_file):
        return cls(**flags)
