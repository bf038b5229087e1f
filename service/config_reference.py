"""The configuration reference (docs/configuration.md), generated from the settings model.

Walks ``Settings`` and every section model it reaches (nested sections, lists
of sections such as ``[[mailboxes]]``, tables of sections such as
``[tagging.routes.<label>]``) and renders each key's type, constraints,
default, environment variable and description as Markdown. Nothing here names
a section or a key, except the mailbox-password variable that settings.py
reads outside pydantic-settings; a new section or key shows up on its own.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from service import settings as settings_module
from service.settings import PROJECT_ROOT, Settings, password_env

MISSING = "—"
# Stands for the entry's name in the path of a table of sections ([tagging.routes.<name>]).
ENTRY = "<name>"


@dataclass(frozen=True)
class Section:
    """One TOML table: its dotted path, how it is reached, its model."""

    path: tuple[str, ...]  # e.g. ("tagging", "routes", "<label>")
    model: type[BaseModel]
    kind: Literal["root", "table", "list", "dict"]
    env: bool  # whether its keys can be set from the environment one by one

    @property
    def toml(self) -> str:
        name = ".".join(self.path)
        return f"[[{name}]]" if self.kind == "list" else f"[{name}]"


# -- walking the model --------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated[...] layers; return the bare type and the constraints found."""
    metadata: list[Any] = []
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        for item in extra:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return annotation, metadata


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _without_none(annotation: Any) -> tuple[Any, bool]:
    if _is_union(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True  # noqa: UP007
    return annotation, False


def _section_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """("table" | "list" | "dict", model) when the field holds a section (or many)."""
    bare, _ = _without_none(_unwrap(annotation)[0])
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "table", bare
    origin, args = get_origin(bare), get_args(bare)
    if origin is list and args:
        inner = _unwrap(args[0])[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return "list", inner
    if origin is dict and len(args) == 2:
        inner = _unwrap(args[1])[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return "dict", inner
    return None


def sections(root: type[BaseModel] = Settings) -> Iterator[Section]:
    """Every section reachable from ``root``, depth first in declaration order."""

    def walk(model: type[BaseModel], path: tuple[str, ...], kind: str, env: bool) -> Iterator[Section]:
        yield Section(path, model, kind, env)  # type: ignore[arg-type]
        for name, field in model.model_fields.items():
            found = _section_model(field.annotation)
            if found is None:
                continue
            sub_kind, sub_model = found
            sub_path = (*path, name) if sub_kind != "dict" else (*path, name, ENTRY)
            # pydantic-settings cannot address one element of a list from the environment.
            yield from walk(sub_model, sub_path, sub_kind, env and sub_kind != "list")

    for section in walk(root, (), "root", True):
        if section.kind != "root" or _plain_fields(section.model):
            yield section


def _plain_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if _section_model(field.annotation) is None]


# -- rendering one key ----------------------------------------------------------


def _constraint(item: Any) -> str | None:
    simple = {
        annotated_types.Ge: ("≥", "ge"), annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("≤", "le"), annotated_types.Lt: ("<", "lt"),
        annotated_types.MinLen: ("length ≥", "min_length"), annotated_types.MaxLen: ("length ≤", "max_length"),
    }
    for cls, (symbol, attr) in simple.items():
        if isinstance(item, cls):
            return f"{symbol} {getattr(item, attr)}"
    pattern = getattr(item, "pattern", None)
    if isinstance(pattern, str):
        return f"matches `{pattern}`"
    return None


def _constraints(metadata: list[Any]) -> list[str]:
    return [c for c in (_constraint(m) for m in metadata) if c]


def describe_type(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A reader's name for a type: 'integer, ≥ 1, ≤ 100', 'list of string', '"tls" | "plain"'."""
    bare, inner_meta = _unwrap(annotation)
    metadata = [*(metadata or []), *inner_meta]
    bare, optional = _without_none(bare)
    bare, inner_meta = _unwrap(bare)  # Optional[Annotated[...]] keeps its constraints inside
    metadata += inner_meta
    origin, args = get_origin(bare), get_args(bare)
    if origin is Literal:
        text = " | ".join(json.dumps(a) for a in args)
    elif origin is list:
        text = f"list of {describe_type(args[0])}" if args else "list"
    elif origin is dict:
        text = f"table of {describe_type(args[0])} → {describe_type(args[1])}" if args else "table"
    elif _is_union(bare):
        text = " or ".join(describe_type(a) for a in args)
    elif isinstance(bare, type) and issubclass(bare, BaseModel):
        text = "table"
    else:
        names: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                                 SecretStr: "secret string"}
        if bare in names:
            text = names[bare]
        elif isinstance(bare, type) and issubclass(bare, Path):
            text = "path"
        else:
            text = str(getattr(bare, "__name__", bare))
    text = ", ".join([text, *_constraints(metadata)])
    return f"{text} (optional)" if optional else text


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(exclude_defaults=True))
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        # Defaults inside the checkout would otherwise print this machine's path.
        try:
            return "<project>/" + value.relative_to(PROJECT_ROOT).as_posix()
        except ValueError:
            return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def toml_value(value: Any) -> str:
    """A value as it would be written in the TOML file (inline tables for tables)."""
    value = _jsonable(value)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return toml_value(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "required"
    return toml_value(field.default)


def env_name(section: Section, key: str, root: type[BaseModel] = Settings) -> str | None:
    """The environment variable that sets this key, or None where there is none."""
    if section.kind == "list" and section.path == ("mailboxes",) and key == "password":
        # settings.py reads this one itself, per mailbox, when the file leaves password empty.
        return password_env("NAME").replace("NAME", "<NAME>")
    if not section.env:
        return None
    prefix = str(root.model_config.get("env_prefix") or "")
    delimiter = str(root.model_config.get("env_nested_delimiter") or "__")
    return prefix + delimiter.join(p.upper() for p in (*section.path, key))


def _needs_json(field: FieldInfo) -> bool:
    bare = _without_none(_unwrap(field.annotation)[0])[0]
    return get_origin(bare) in (list, dict)


def _is_list(field: FieldInfo) -> bool:
    return get_origin(_without_none(_unwrap(field.annotation)[0])[0]) is list


def _config_relative_paths() -> set[tuple[str, ...]]:
    """Dotted keys whose relative paths load_settings resolves against the config file's directory.

    Found by running settings.py's own resolver on a probe, so this follows the code.
    """
    resolve = getattr(settings_module, "_resolve_relative_paths", None)
    if resolve is None:
        return set()
    probe: dict[str, Any] = {}
    keys: list[tuple[tuple[str, ...], str]] = []
    for section in sections():
        for name in _plain_fields(section.model):
            bare = _without_none(_unwrap(section.model.model_fields[name].annotation)[0])[0]
            if isinstance(bare, type) and issubclass(bare, Path):
                keys.append((section.path, name))
    for path, name in keys:
        node: Any = probe
        for i, part in enumerate(path):
            if part.startswith("<"):
                break
            kind = next(s.kind for s in sections() if s.path == path[: i + 1])
            node = node.setdefault(part, [{}])[0] if kind == "list" else node.setdefault(part, {})
        else:
            node[name] = "relative-probe"
    try:
        resolve(probe, Path("/probe-base"))
    except Exception:  # noqa: BLE001 - a changed resolver must not break the docs
        return set()
    found: set[tuple[str, ...]] = set()
    for path, name in keys:
        node = probe
        for part in path:
            if part.startswith("<") or node is None:
                node = None
                break
            node = node.get(part)
            node = node[0] if isinstance(node, list) else node
        if isinstance(node, dict) and str(node.get(name, "")).startswith("/probe-base"):
            found.add((*path, name))
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- the document ----------------------------------------------------------------

_INTRO = """\
# Configuration reference

<!-- Generated from service/settings.py by `warningshot config-reference --output docs/configuration.md`.
     Do not edit by hand; tests/test_config_reference.py fails when it is out of date. -->

WarningShot reads one TOML file, given with `-c FILE` or `$WARNINGSHOT_CONFIG`;
without either, the built-in defaults below apply (no mailbox: `run` refuses to
start, `scan` works). `config/warningshot.example.toml` is a commented example.
`warningshot check-config -c FILE` validates a file and lists every problem with
its key; `run` refuses a bad file with the same message and exit code 2.

* **Unknown keys are errors**, so a misspelt key never silently does nothing.
* **Environment variables beat the file.** Every key of a section has one,
  named `{prefix}<SECTION>{delim}<KEY>` (nested sections add a level, e.g.
  `{example_nested}`); the names are listed below. Lists and tables are given as
  JSON, e.g. `{example_json}='["…"]'`. The keys of a list of tables
  (`[[mailboxes]]`) have no variables of their own (the whole list can only be
  replaced, as JSON); the exception is each mailbox's password.
* **Mailbox passwords** stay out of the file: when a mailbox's `password` is
  empty, it is read from `{password_pattern}`, where `<NAME>` is the mailbox's
  `name` in capitals with every character other than A–Z and 0–9 replaced by `_`
  (mailbox `support-eu`: `{password_example}`).
* **Relative paths** in the file are resolved against the directory of the
  config file for the keys marked "relative to the config file" below and for a
  SQLite `store.url`; other relative paths, and any path given in an environment
  variable, are taken as they are (relative to the working directory).
* `<project>` in a default is the directory WarningShot runs from (the
  checkout, or `/app` in the container image).
* A default of `unset` means the key is absent; "(optional)" types accept that.
"""


def render(root: type[BaseModel] = Settings) -> str:
    """The whole reference as Markdown (``root``: the settings class, for tests)."""
    prefix = str(root.model_config.get("env_prefix") or "")
    delim = str(root.model_config.get("env_nested_delimiter") or "__")
    all_sections = list(sections(root))
    nested = next((s for s in all_sections if s.env and len(s.path) >= 2 and not s.path[-1].startswith("<")), None)
    example_nested = (
        env_name(nested, _plain_fields(nested.model)[0], root) if nested and _plain_fields(nested.model) else
        f"{prefix}SECTION{delim}SUB{delim}KEY"
    )
    json_example = next(
        (env_name(s, n, root) for s in all_sections if s.env and s.kind == "table"
         for n in _plain_fields(s.model) if _is_list(s.model.model_fields[n])),
        f"{prefix}SECTION{delim}LIST",
    )
    out = [_INTRO.format(
        prefix=prefix, delim=delim, example_nested=example_nested, example_json=json_example,
        password_pattern=password_env("NAME").replace("NAME", "<NAME>"),
        password_example=password_env("support-eu"),
    )]
    relative = _config_relative_paths() if root is Settings else set()

    out.append("## Sections\n")
    for section in all_sections:
        anchor = _anchor(section)
        out.append(f"* [`{section.toml}`](#{anchor})" if section.path else f"* [top-level keys](#{anchor})")
    out.append("")

    for section in all_sections:
        out.append(f"## `{section.toml}`\n" if section.path else "## Top-level keys\n")
        if section.model is not root and _summary(section.model):
            out.append(_summary(section.model) + "\n")
        if section.kind == "list":
            out.append(f"A list: write one `{section.toml}` block per entry.\n")
        elif section.kind == "dict":
            parent = ".".join(section.path[:-1])
            out.append(f"A table of sections: `{section.path[-1]}` is the entry's name, as in "
                       f"`[{parent}.NAME]`. Entries not written keep their defaults (see `{parent}`).\n")
        out.append("| key | type | default | environment variable | description |")
        out.append("|---|---|---|---|---|")
        for name, field in section.model.model_fields.items():
            found = _section_model(field.annotation)
            description = field.description or (_summary(found[1]) if found else "") or MISSING
            if found is not None and found[0] != "dict":
                sub = next(s for s in all_sections if s.path == (*section.path, name))
                type_text = f"section [`{sub.toml}`](#{_anchor(sub)})"
                if found[0] == "list":
                    type_text = f"list of sections [`{sub.toml}`](#{_anchor(sub)})"
                default = default_text(field) if found[0] == "list" else "see the section"
                env = None
            else:
                if found is not None:
                    sub = next(s for s in all_sections if s.path[:-1] == (*section.path, name))
                    type_text = f"table of name → section [`{sub.toml}`](#{_anchor(sub)})"
                else:
                    type_text = describe_type(field.annotation, list(field.metadata))
                    if (*section.path, name) in relative:
                        type_text += ", relative to the config file"
                default = default_text(field)
                env = env_name(section, name, root)
            env_text = f"`{env}`" if env else MISSING
            if env and _needs_json(field):
                env_text += " (JSON)"
            out.append("| " + " | ".join(_cell(c) for c in (
                f"`{name}`", type_text, f"`{default}`" if default not in {"required", "see the section"} else default,
                env_text, description,
            )) + " |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _summary(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__") or ""
    return " ".join(doc.split())


def _anchor(section: Section) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    title = section.toml if section.path else "top-level keys"
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def missing_descriptions(root: type[BaseModel] = Settings) -> list[str]:
    """Dotted keys of fields that have no description (shown as "—")."""
    missing = []
    for section in sections(root):
        for name, field in section.model.model_fields.items():
            found = _section_model(field.annotation)
            if not field.description and not (found and _summary(found[1])):
                missing.append(".".join((*section.path, name)))
    return missing
