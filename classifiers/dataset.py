"""Training and evaluation data: in-domain support emails and public abusive/none corpora.

In-domain emails (``classifiers/data/emails/*.jsonl``, format in
``data/WRITING_GUIDE.md``) are split train/dev/test *by scenario*, from a hash
of the scenario id, so paraphrases of one story never straddle splits and the
split of an email never changes when more files arrive.

Public rows (``../shared/data/train/*.jsonl``) only ever say abusive vs none;
they were never annotated for extortion or legal threats, so their examples
carry a label mask that hides those two labels from the loss. 10% of every
source, chosen by a hash of the row id, is kept aside as the public dev split.
The files' own ``split`` field is ignored: it marks splits of the upstream
corpora, not ours, and every row in these files was already de-duplicated
against the project's held-out data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from classifiers.interface import LABELS

log = logging.getLogger(__name__)

EMAIL_SPLITS = {"train": (0, 60), "dev": (60, 80), "test": (80, 100)}
PUBLIC_DEV_PERCENT = 10
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EMAIL_DIR = REPO_ROOT / "classifiers" / "data" / "emails"
DEFAULT_PUBLIC_DIR = REPO_ROOT.parent / "shared" / "data" / "train"
_ALL = (1.0,) * len(LABELS)
_ABUSIVE_ONLY = tuple(1.0 if label == "abusive" else 0.0 for label in LABELS)


@dataclass(frozen=True, slots=True)
class Example:
    """One model input with its targets; ``mask`` is 0 where a label was never annotated."""

    id: str
    text: str
    targets: tuple[float, ...]
    mask: tuple[float, ...]
    lang: str
    source: str
    split: str
    hard_negative: bool = False
    in_domain: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, t, m in zip(LABELS, self.targets, self.mask, strict=True) if t and m)


def bucket(key: str) -> int:
    """A stable 0..99 bucket for a string (sha256, so it does not depend on PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100


def email_split(scenario: str) -> str:
    """train / dev / test for a scenario id, about 60 / 20 / 20."""
    b = bucket("scenario:" + scenario)
    return next(name for name, (lo, hi) in EMAIL_SPLITS.items() if lo <= b < hi)


def public_split(row_id: str) -> str:
    """train / dev for a public row id (10% dev)."""
    return "dev" if bucket("public:" + row_id) < PUBLIC_DEV_PERCENT else "train"


def email_text(subject: str, body: str) -> str:
    """What the classifier reads of an email: subject + visible body (quotes, signatures removed)."""
    from service.mail.parse import model_text

    return model_text(subject, body)


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                # files are written while we read them: a half-written last line is expected
                log.warning("%s:%d: not valid JSON, skipped", path, number)
                continue
            if isinstance(row, dict):
                yield number, row


def _email_files(paths: Sequence[Path | str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    return files


def load_emails(paths: Sequence[Path | str] = (DEFAULT_EMAIL_DIR,),
                splits: Sequence[str] | None = None) -> list[Example]:
    """In-domain emails from JSON Lines files or directories of them, optionally only some splits."""
    examples: list[Example] = []
    seen: set[str] = set()
    for file in _email_files(paths):
        for number, row in _read_jsonl(file):
            try:
                labels = row["labels"]
                unknown = set(labels) - set(LABELS)
                if unknown:
                    raise ValueError(f"unknown labels {sorted(unknown)}")
                key, lang, scenario = str(row["id"]), str(row["lang"]), str(row["scenario"])
                subject, body = str(row.get("subject") or ""), str(row["body"])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s:%d: skipped (%s)", file, number, exc)
                continue
            if key in seen:
                log.warning("%s:%d: duplicate id %s skipped", file, number, key)
                continue
            seen.add(key)
            split = email_split(scenario)
            if splits is not None and split not in splits:
                continue
            examples.append(Example(
                id=key, text=email_text(subject, body),
                targets=tuple(1.0 if label in labels else 0.0 for label in LABELS), mask=_ALL,
                lang=lang, source=file.name, split=split,
                hard_negative=bool(row.get("hard_negative", False)),
            ))
    return examples


def load_public(directory: Path | str = DEFAULT_PUBLIC_DIR, splits: Sequence[str] | None = None) -> list[Example]:
    """Public abusive/none rows; extortion and legal_threat are masked out of the loss."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"public data directory {root} does not exist")
    examples: list[Example] = []
    for file in sorted(root.glob("*.jsonl")):
        for number, row in _read_jsonl(file):
            label, text = row.get("label"), row.get("text")
            if label not in ("abusive", "none") or not isinstance(text, str) or not text.strip():
                log.warning("%s:%d: not an abusive/none row, skipped", file, number)
                continue
            key = str(row.get("id") or f"{file.stem}-{number}")
            split = public_split(key)
            if splits is not None and split not in splits:
                continue
            examples.append(Example(
                id=key, text=text.strip(), targets=(1.0 if label == "abusive" else 0.0, 0.0, 0.0),
                mask=_ABUSIVE_ONLY, lang=str(row.get("lang") or "und"),
                source=str(row.get("source") or file.stem), split=split, in_domain=False,
            ))
    return examples


DEFAULT_LANG_WEIGHTS = {"ar": 3.0, "he": 2.0, "en": 2.0}


def balanced_sample(rows: Sequence[Example], total: int, seed: int,
                    lang_weights: Mapping[str, float] = DEFAULT_LANG_WEIGHTS) -> list[Example]:
    """About ``total`` rows spread over languages, half abusive and half none in each.

    Every language gets a share proportional to its weight (1 unless listed):
    the product's first languages (Arabic, Hebrew, English) get more. Languages
    with no ``none`` rows (toxic-only corpora) fill only a quarter of their
    share, so the model does not learn "this language means abusive".
    """
    by_lang: dict[str, dict[bool, list[Example]]] = defaultdict(lambda: {True: [], False: []})
    for row in rows:
        by_lang[row.lang][bool(row.targets[0])].append(row)
    rng = random.Random(seed)
    weight_sum = sum(lang_weights.get(lang, 1.0) for lang in by_lang) or 1.0
    chosen: list[Example] = []
    for lang in sorted(by_lang):
        quota = int(total * lang_weights.get(lang, 1.0) / weight_sum)
        groups = by_lang[lang]
        n_none = min(len(groups[False]), quota // 2)
        n_abusive = min(len(groups[True]), quota // 2 if n_none else quota // 4)
        for positive, n in ((True, n_abusive), (False, n_none)):
            pool = sorted(groups[positive], key=lambda r: r.id)
            chosen.extend(rng.sample(pool, n))
    return sorted(chosen, key=lambda r: r.id)


def long_variants(emails: Sequence[Example], count: int, seed: int, min_chars: int = 1000,
                  max_chars: int = 1800) -> list[Example]:
    """``count`` training-only long mails: an email's body set among benign bodies of its language.

    The hand-written emails are short (median ~130 tokens, 4% beyond one
    window), so the model rarely saw a window that is mostly harmless detail
    with one threatening sentence in it, and such a window scored well below
    the same sentence in a short mail. Each variant keeps the subject and
    labels of its source email and puts its body at a random place among
    bodies of label-free emails in the same language, until the text is
    ``min_chars`` to ``max_chars`` long. Label-free emails get variants too, so
    length says nothing about the labels.
    """
    if count <= 0:
        return []
    rng = random.Random(seed * 7919 + 1)
    benign: dict[str, list[Example]] = defaultdict(list)
    for ex in sorted(emails, key=lambda e: e.id):
        if ex.in_domain and not any(ex.targets):
            benign[ex.lang].append(ex)
            benign[f"{ex.lang}/{ex.source}"].append(ex)
    sources = sorted((ex for ex in emails if ex.in_domain and len(benign[ex.lang]) >= 3), key=lambda e: e.id)
    variants: list[Example] = []
    for ex in rng.sample(sources, min(count, len(sources))):
        subject, _, body = ex.text.partition("\n")
        target = rng.randint(min_chars, max_chars)
        # Bodies from the same file first: one writer's dialect and products, so a
        # variant reads like one customer's mail rather than a mix of varieties.
        same_file = [b for b in benign[f"{ex.lang}/{ex.source}"] if b.id != ex.id]
        fillers = same_file if len(same_file) >= 3 else [b for b in benign[ex.lang] if b.id != ex.id]
        rng.shuffle(fillers)
        parts, size = [body or subject], len(ex.text)
        for filler in fillers:
            if size >= target:
                break
            paragraph = filler.text.partition("\n")[2] or filler.text
            # Training keeps only the first max_windows windows of a text: a
            # capped length keeps the source body inside them.
            if size + len(paragraph) + 2 > max_chars:
                continue
            parts.insert(rng.randint(0, len(parts)), paragraph)
            size += len(paragraph) + 2
        text = "\n\n".join(parts)
        variants.append(Example(
            id=f"{ex.id}+long", text=f"{subject}\n{text}" if body else text,
            targets=ex.targets, mask=ex.mask, lang=ex.lang, source=ex.source, split=ex.split,
            hard_negative=ex.hard_negative, in_domain=True,
        ))
    return sorted(variants, key=lambda e: e.id)
