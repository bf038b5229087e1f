"""The docs index: which page of the admin's documentation answers a Will's question.

Pages are Markdown or HTML files under ``playbook.will.docs_dir``. Each page
is embedded once (``passage: `` title and text), the question is embedded as
a ``query: ``, and the page with the highest cosine similarity wins. The
embedding function is injectable; the real one, :class:`BaseModelEmbedder`,
mean-pools the base encoder's last hidden states (e5's recipe) and loads the
model on first use, so nothing heavy happens unless a docs index is
configured and a Will draft needs it.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
Embed = Callable[[Sequence[str], Kind], Sequence[Sequence[float]]]
"""``embed(texts, kind)``: one vector per text; kind says which e5 prefix applies."""

MARKDOWN = (".md", ".markdown")
HTML = (".html", ".htm")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_MD_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_CANONICAL = re.compile(r"<link\b[^>]*rel=[\"']canonical[\"'][^>]*>", re.IGNORECASE)
_HREF = re.compile(r"href=[\"']([^\"']+)[\"']", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class DocPage:
    path: Path
    title: str
    url: str
    text: str


def _url(root: Path, path: Path, base_url: str, extension: str) -> str:
    relative = path.relative_to(root).as_posix()
    if path.suffix.lower() in MARKDOWN:
        relative = relative[: -len(path.suffix)] + extension
    return base_url.rstrip("/") + "/" + quote(relative)


def read_page(root: Path, path: Path, base_url: str, extension: str = ".html") -> DocPage:
    """One page: title, link and plain text (front matter ``title:``/``url:`` and canonical links win)."""
    source = path.read_text(encoding="utf-8", errors="replace")
    url = _url(root, path, base_url, extension)
    title = ""
    if path.suffix.lower() in HTML:
        canonical = _CANONICAL.search(source)
        href = _HREF.search(canonical.group(0)) if canonical else None
        url = href.group(1) if href else url
        found = _HTML_TITLE.search(source)
        title = _TAG.sub("", next(g for g in found.groups() if g)) if found else ""
        from inscriptis import get_text  # type: ignore[import-untyped]

        text = get_text(source)
    else:
        text = source
        front = _FRONT_MATTER.match(source)
        if front:
            text = source[front.end():]
            for line in front.group(1).splitlines():
                name, _, value = line.partition(":")
                if name.strip() == "title":
                    title = value.strip().strip("\"'")
                elif name.strip() == "url":
                    url = value.strip().strip("\"'")
        heading = _MD_HEADING.search(text)
        title = title or (heading.group(1) if heading else "")
    title = " ".join(title.split()) or path.stem.replace("-", " ").replace("_", " ")
    return DocPage(path, title, url, " ".join(text.split()))


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class DocsIndex:
    """Pages of a docs folder and their embeddings, refreshed when files change."""

    def __init__(self, root: Path, base_url: str, embed: Embed, *, extension: str = ".html",
                 max_chars: int = 2000) -> None:
        self.root = root
        self.base_url = base_url
        self.embed = embed
        self.extension = extension
        self.max_chars = max_chars
        self._pages: dict[Path, tuple[float, DocPage, Sequence[float]]] = {}
        self._lock = threading.Lock()

    def _files(self) -> dict[Path, float]:
        if not self.root.is_dir():
            return {}
        return {
            p: p.stat().st_mtime for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.suffix.lower() in MARKDOWN + HTML
        }

    def refresh(self) -> int:
        """Embed new and changed pages, drop deleted ones; returns the number of pages."""
        with self._lock:
            files = self._files()
            for gone in set(self._pages) - set(files):
                del self._pages[gone]
            stale = [p for p, mtime in files.items() if p not in self._pages or self._pages[p][0] != mtime]
            if stale:
                pages = [read_page(self.root, p, self.base_url, self.extension) for p in stale]
                vectors = self.embed([f"{page.title}\n{page.text}"[: self.max_chars] for page in pages], "passage")
                for page, vector in zip(pages, vectors, strict=True):
                    self._pages[page.path] = (files[page.path], page, list(vector))
                log.info("docs index: %d page(s) embedded, %d in all", len(stale), len(self._pages))
            return len(self._pages)

    def best(self, question: str) -> tuple[DocPage, float] | None:
        """The page closest to ``question`` and its similarity, or None without pages."""
        if not self.refresh() or not question.strip():
            return None
        query = list(self.embed([question[: self.max_chars]], "query")[0])
        with self._lock:
            scored = [(_cosine(query, vector), page) for _mtime, page, vector in self._pages.values()]
        similarity, page = max(scored, key=lambda item: (item[0], -len(item[1].url)))
        return page, similarity


class BaseModelEmbedder:
    """e5 embeddings from classifiers.base_model.load_base: mean-pooled, L2-normalised."""

    def __init__(self, cache_dir: Path | None = None, *, max_tokens: int = 512, batch_size: int = 8) -> None:
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._model is None:
                from classifiers.base_model import load_base  # torch loads here, not at import

                model, tokenizer = load_base(self.cache_dir)
                tokenizer.enable_truncation(max_length=self.max_tokens)
                self._model, self._tokenizer = model, tokenizer

    def __call__(self, texts: Sequence[str], kind: Kind) -> list[list[float]]:
        import torch

        self._load()
        pad = self._tokenizer.token_to_id("<pad>")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = [f"{kind}: {t}" for t in texts[start : start + self.batch_size]]
            encodings = self._tokenizer.encode_batch(chunk, add_special_tokens=True)
            longest = max(len(e.ids) for e in encodings)
            ids = torch.full((len(chunk), longest), pad if pad is not None else 1, dtype=torch.long)
            mask = torch.zeros((len(chunk), longest), dtype=torch.long)
            for row, enc in enumerate(encodings):
                ids[row, : len(enc.ids)] = torch.tensor(enc.ids, dtype=torch.long)
                mask[row, : len(enc.ids)] = 1
            with self._lock, torch.inference_mode():
                hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            vectors.extend(pooled.tolist())
        return vectors


__all__ = ["BaseModelEmbedder", "DocPage", "DocsIndex", "Embed", "read_page"]
