"""Reply templates: config/templates/<lang>/<name>.txt, rendered in a Jinja2 sandbox.

An admin overrides any template by putting a file with the same relative path
in ``playbook.templates_dir``; it wins over the shipped one. Rendering uses
StrictUndefined and leaves out every value that is empty, so a placeholder
without a value is a :class:`TemplateError`, never a half-filled mail.
Optional parts are written ``{% if customer_name is defined %}...{% endif %}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from service.errors import TemplateError
from service.settings import PROJECT_ROOT

SHIPPED_DIR: Final = PROJECT_ROOT / "config" / "templates"
SUFFIX: Final = ".txt"
RTL_LANGUAGES: Final = frozenset({"ar", "he", "fa", "ur", "yi", "ps"})

_NAME = re.compile(r"^[a-z_]{1,64}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_BLANK_RUN = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered reply body and what it was rendered as."""

    name: str
    language: str
    text: str

    @property
    def direction(self) -> str:
        return direction_of(self.language)


def direction_of(language: str) -> str:
    return "rtl" if language in RTL_LANGUAGES else "ltr"


def base_language(code: str | None) -> str:
    """``pt-BR`` → ``pt``; empty or undetermined → ``""``."""
    value = (code or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return value if _LANGUAGE.match(value) and value != "und" else ""


class TemplateRenderer:
    """Finds and renders templates; safe to share between threads."""

    def __init__(self, override_dir: Path | None = None, default_language: str = "en",
                 shipped_dir: Path = SHIPPED_DIR) -> None:
        self.dirs = [d for d in (override_dir, shipped_dir) if d is not None]
        self.default_language = default_language
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs], encoding="utf-8"),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text; the HTML part escapes on its own
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def _exists(self, language: str, name: str) -> bool:
        return any((d / language / f"{name}{SUFFIX}").is_file() for d in self.dirs)

    def language_for(self, name: str, detected: str | None) -> str:
        """The message's language when a template exists for it, else the default."""
        if not _NAME.match(name):
            raise TemplateError(f"invalid template name {name!r}")
        language = base_language(detected)
        if language and self._exists(language, name):
            return language
        if self._exists(self.default_language, name):
            return self.default_language
        raise TemplateError(
            f"template {name!r} exists neither for {language or 'und'!r} "
            f"nor for the default language {self.default_language!r}"
        )

    def languages(self) -> list[str]:
        """Every language that has at least one template."""
        found = {p.name for d in self.dirs if d.is_dir() for p in d.iterdir() if p.is_dir() and _LANGUAGE.match(p.name)}
        return sorted(found)

    def render(self, name: str, language: str, values: Mapping[str, object]) -> Rendered:
        """Render ``<language>/<name>``; empty values count as missing."""
        path = f"{language}/{name}{SUFFIX}"
        context = {k: v for k, v in values.items() if v is not None and v != ""}
        try:
            text = self.env.get_template(path).render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{path}: a placeholder has no value ({exc.message})") from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{path}: no such template") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{path}: line {exc.lineno}: {exc.message}") from exc
        except jinja2.TemplateError as exc:  # SecurityError and the rest of Jinja's tree
            raise TemplateError(f"{path}: {exc.__class__.__name__}: {exc}") from exc
        text = _BLANK_RUN.sub("\n\n", _TRAILING_SPACE.sub("\n", text.replace("\r\n", "\n"))).strip() + "\n"
        return Rendered(name, language, text)


__all__ = ["RTL_LANGUAGES", "SHIPPED_DIR", "Rendered", "TemplateRenderer", "base_language", "direction_of"]
