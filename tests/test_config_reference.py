"""docs/configuration.md is generated from the settings model and stays in step with it."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from conftest import REPO
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service import config_reference
from service.errors import ConfigError
from service.settings import Settings, load_settings

DOC = REPO / "docs" / "configuration.md"
REGENERATE = ".venv/bin/warningshot config-reference --output docs/configuration.md"


def _doc_keys(text: str) -> dict[str, set[str]]:
    """Section heading (dotted path) -> keys in its table."""
    keys: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^## `\[\[?([^\]]+)\]\]?`$", line)
        if heading:
            current = keys.setdefault(heading.group(1), set())
        elif line.startswith("## "):
            current = keys.setdefault(line[3:].strip(), set())
        row = re.match(r"^\| `([^`]+)` \|", line)
        if row and current is not None:
            current.add(row.group(1))
    return keys


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _expected(model: type[BaseModel], path: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """Walked independently of the generator: every model reachable from Settings, with its keys.

    A model inside a dict gets a "*" path segment (the entry's name).
    """
    found = {path: set(model.model_fields)} if path else {}
    for name, field in model.model_fields.items():
        for sub in _models_in(field.annotation):
            is_dict = typing.get_origin(field.annotation) is dict
            found.update(_expected(sub, (*path, name, "*") if is_dict else (*path, name)))
    return found


def test_committed_reference_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == config_reference.render(), (
        f"docs/configuration.md is out of date with service/settings.py; regenerate it with `{REGENERATE}`"
    )


def test_every_key_of_every_section_is_documented():
    documented = _doc_keys(DOC.read_text(encoding="utf-8"))
    expected = _expected(Settings)
    assert len(expected) >= 10
    for path, keys in expected.items():
        pattern = re.compile(r"\.".join(r"<[^>]+>" if p == "*" else re.escape(p) for p in path) + "$")
        headings = [h for h in documented if pattern.match(h)]
        assert len(headings) == 1, f"section {'.'.join(path)} missing from docs/configuration.md ({REGENERATE})"
        missing = keys - documented[headings[0]]
        assert not missing, f"[{'.'.join(path)}] keys {sorted(missing)} missing ({REGENERATE})"


def test_reference_shows_types_constraints_defaults_and_env_names():
    text = config_reference.render()
    row = next(line for line in text.splitlines() if line.startswith("| `max_attempts` | integer, ≥ 1, ≤ 100"))
    assert "`3`" in row and "`WARNINGSHOT_DAEMON__MAX_ATTEMPTS`" in row and "quarantined" in row
    assert "`WARNINGSHOT_PLAYBOOK__WILL__DAYS`" in text
    assert "`WARNINGSHOT_MAILBOX_<NAME>_PASSWORD`" in text and "WARNINGSHOT_MAILBOX_SUPPORT_EU_PASSWORD" in text
    assert '"tls" \\| "starttls" \\| "plain"' in text  # a Literal, with its pipes escaped for the table
    assert "number, ≥ 0.0, ≤ 1.0 (optional)" in text  # constraints inside Optional[Annotated[...]]
    assert str(REPO) not in text  # no machine-specific default paths


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("WARNINGSHOT_MAILBOX_SUPPORT_PASSWORD", "a-real-secret")
    settings = load_settings(REPO / "config" / "warningshot.example.toml")
    assert [m.name for m in settings.mailboxes] == ["support", "billing"]


def _set_in(settings: BaseModel, path: tuple[str, ...]) -> BaseModel:
    node = settings
    for part in path:
        node = getattr(node, part)
    return node


def test_documented_env_names_reach_their_keys(monkeypatch, tmp_path):
    """Flip every boolean through the variable the reference names for it."""
    config = tmp_path / "empty.toml"
    config.write_text("")
    checked = 0
    for section in config_reference.sections():
        if not section.env or any(p.startswith("<") for p in section.path):
            continue
        for name, field in section.model.model_fields.items():
            if field.annotation is not bool:
                continue
            env = config_reference.env_name(section, name)
            assert env is not None
            default = field.get_default(call_default_factory=True)
            monkeypatch.setenv(env, "false" if default else "true")
            try:
                value = getattr(_set_in(load_settings(config), section.path), name)
                assert value is (not default), env
            except ConfigError as exc:  # the flip broke a rule: the error names the key, so it arrived
                assert ".".join((*section.path, name)) in str(exc) or section.path[0] in str(exc), env
            monkeypatch.delenv(env)
            checked += 1
    assert checked >= 10


def test_mailbox_password_variable_as_documented(monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[mailboxes]]\nname = "support-eu"\nhost = "imap.example.com"\nusername = "u"\n')
    monkeypatch.setenv("WARNINGSHOT_MAILBOX_SUPPORT_EU_PASSWORD", "a-real-secret")
    assert load_settings(config).mailboxes[0].password.get_secret_value() == "a-real-secret"


def test_generator_is_generic_and_tolerates_missing_descriptions():
    class Retention(BaseModel):
        """How long things are kept."""

        days: int = Field(default=30, ge=1)
        paths: list[Path] = Field(default_factory=list, description="Extra paths.")

    class Other(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="X_", env_nested_delimiter="__")
        retention: Retention = Field(default_factory=Retention)
        named: dict[str, Retention] = Field(default_factory=dict)

    text = config_reference.render(Other)
    assert "## `[retention]`" in text and "How long things are kept." in text
    assert "| `days` | integer, ≥ 1 | `30` | `X_RETENTION__DAYS` | — |" in text
    assert "| `paths` | list of path | `[]` | `X_RETENTION__PATHS` (JSON) | Extra paths. |" in text
    assert "## `[named.<name>]`" in text and "`X_NAMED__<NAME>__DAYS`" in text
    assert config_reference.missing_descriptions(Other) == ["retention.days", "named.<name>.days"]


@pytest.mark.parametrize("args", [[], ["--output", "{out}"]])
def test_cli_prints_or_writes_the_reference(args, tmp_path):
    from click.testing import CliRunner

    from service.cli import main

    out = tmp_path / "ref.md"
    result = CliRunner().invoke(main, ["config-reference", *[a.format(out=out) for a in args]])
    assert result.exit_code == 0, result.output
    written = out.read_text(encoding="utf-8") if args else result.output
    assert written == config_reference.render()
