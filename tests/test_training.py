"""Training: public draws per epoch, determinism with a seed, and resuming a stopped run.

The training runs here are a few optimizer steps on the real base model and a
dozen emails: enough to prove that a seed fixes the weights and that a resumed
run ends where an uninterrupted one does, not to learn anything.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from safetensors.torch import load_file

from classifiers.dataset import Example, long_variants
from classifiers import train as training
from classifiers.train import CHECKPOINT_DIR, TrainConfig, epoch_members, public_draws, train


def _public_row(i: int, lang: str, abusive: bool) -> Example:
    return Example(id=f"{lang}-{i:04d}", text=f"row {i}", targets=(float(abusive), 0.0, 0.0),
                   mask=(1.0, 0.0, 0.0), lang=lang, source=f"src_{lang}", split="train", in_domain=False)


PUBLIC = [_public_row(i, lang, i % 2 == 0) for lang in ("ar", "en", "he") for i in range(400)]


def test_fresh_draws_are_disjoint_equal_and_balanced() -> None:
    config = TrainConfig(epochs=4, public_rows=120)
    draws = public_draws(PUBLIC, config)
    assert len(draws) == 4
    assert len({len(draw) for draw in draws}) == 1
    ids = [row.id for draw in draws for row in draw]
    assert len(ids) == len(set(ids))
    for draw in draws:
        by_lang = Counter(row.lang for row in draw)
        # Arabic weighs 3, Hebrew and English 2 (dataset.DEFAULT_LANG_WEIGHTS); allow the dealing's noise.
        assert by_lang["ar"] > by_lang["en"] and by_lang["ar"] > by_lang["he"]
        abusive = sum(row.targets[0] for row in draw)
        assert 0.35 < abusive / len(draw) < 0.65


def test_draws_depend_only_on_the_seed() -> None:
    first = public_draws(PUBLIC, TrainConfig(epochs=3, public_rows=90))
    again = public_draws(list(reversed(PUBLIC)), TrainConfig(epochs=3, public_rows=90))
    other = public_draws(PUBLIC, TrainConfig(epochs=3, public_rows=90, seed=14))
    assert [[r.id for r in d] for d in first] == [[r.id for r in d] for d in again]
    assert [[r.id for r in d] for d in first] != [[r.id for r in d] for d in other]


def test_without_fresh_draws_every_epoch_reuses_one_draw() -> None:
    draws = public_draws(PUBLIC, TrainConfig(epochs=4, public_rows=120, public_fresh_draws=False))
    assert len(draws) == 1
    assert epoch_members(5, len(draws[0]), 1, 0) == epoch_members(5, len(draws[0]), 1, 3)


def test_each_epoch_trains_on_every_email_and_its_own_draw() -> None:
    members = [epoch_members(3, 4, 2, epoch) for epoch in range(3)]
    assert members[0] == [0, 1, 2, 3, 4, 5, 6]
    assert members[1] == [0, 1, 2, 7, 8, 9, 10]
    assert members[2] == members[0]  # epochs past the last draw wrap around


def _email(i: int, lang: str, labels: tuple[str, ...], body: str, source: str = "a.jsonl") -> Example:
    return Example(id=f"{lang}-m{i:03d}", text=f"subject {i}\n{body}", targets=tuple(
        float(label in labels) for label in ("abusive", "extortion", "legal_threat")), mask=(1.0, 1.0, 1.0),
        lang=lang, source=source, split="train", hard_negative=i % 7 == 0)


MAILS = [_email(i, lang, labels, f"{lang} paragraph {i}. " * 12)
         for lang in ("en", "de") for i, labels in enumerate([(), (), (), (), ("abusive",), ("legal_threat",),
                                                              ("extortion", "legal_threat"), (), ()] * 3)]


def test_long_variants_keep_their_source_body_labels_and_language() -> None:
    variants = long_variants(MAILS, 20, seed=13)
    assert len(variants) == 20 and len({v.id for v in variants}) == 20
    by_id = {m.id: m for m in MAILS}
    for variant in variants:
        source = by_id[variant.id.removesuffix("+long")]
        subject, _, body = source.text.partition("\n")
        assert variant.text.startswith(subject + "\n")
        parts = variant.text[len(subject) + 1:].split("\n\n")
        assert parts.count(body) == 1
        assert (variant.targets, variant.lang, variant.hard_negative) == (source.targets, source.lang,
                                                                          source.hard_negative)
        assert 1000 <= len(variant.text) <= 1800 + len(subject) + 1
        # the padding is benign mail of the same language only
        padding = [p for p in parts if p != body]
        assert padding
        for paragraph in padding:
            filler = next(m for m in MAILS if m.text.partition("\n")[2] == paragraph)
            assert filler.lang == source.lang and not any(filler.targets)
    assert {v.labels for v in variants} >= {(), ("abusive",)}  # label-free mail is lengthened too


def test_long_variants_depend_only_on_the_seed() -> None:
    first = long_variants(MAILS, 10, seed=13)
    assert [v.text for v in first] == [v.text for v in long_variants(list(reversed(MAILS)), 10, seed=13)]
    assert [v.text for v in first] != [v.text for v in long_variants(MAILS, 10, seed=14)]
    assert long_variants(MAILS, 0, seed=13) == []


EMAILS = [
    ("en", "you useless idiots, fix my site", ["abusive"]),
    ("en", "refund me today or I post one-star reviews everywhere", ["extortion"]),
    ("en", "my lawyer will hear about this, see you in court", ["legal_threat"]),
    ("en", "how do I renew my licence key?", []),
    ("ar", "يا حمير رجعوا فلوسي", ["abusive"]),
    ("ar", "سأرفع قضية في المحكمة", ["legal_threat"]),
    ("he", "שלום, איך מחדשים את המנוי?", []),
    ("he", "אם לא תחזירו את הכסף אפרסם ביקורת בכל הקבוצות", ["extortion"]),
]


def _write_data(root: Path) -> tuple[Path, Path]:
    emails, public = root / "emails", root / "public"
    emails.mkdir()
    public.mkdir()
    lines = []
    for i, (lang, text, labels) in enumerate(EMAILS * 2):
        lines.append(json.dumps({"id": f"t-{i}", "lang": lang, "variety": "", "scenario": f"t-s{i}",
                                 "product": "saas", "subject": "ticket", "body": text, "labels": labels,
                                 "hard_negative": False}, ensure_ascii=False))
    (emails / "t.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [{"id": f"p-{i}", "text": f"public text number {i}", "lang": "en",
             "label": "abusive" if i % 2 else "none"} for i in range(60)]
    (public / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return emails, public


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _write_data(tmp_path_factory.mktemp("training-data"))


SMOKE = TrainConfig(epochs=2, batch_size=8, public_rows=16, max_steps=6, checkpoint_every=3,
                    score_window=128)


def _crash_at(step: int, step_loss):
    """``step_loss`` that stops the run at ``step`` as a killed process would (after the step-3 checkpoint)."""
    calls = []

    def crashing(*args, **kwargs):
        calls.append(step)
        if len(calls) == step:
            raise KeyboardInterrupt
        return step_loss(*args, **kwargs)

    return crashing


def _weights(model_dir: Path) -> dict:
    return {**load_file(model_dir / "adapter.safetensors"), **load_file(model_dir / "head.safetensors")}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.fixture(scope="module")
def reference(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    emails, public = data
    return train([emails], tmp_path_factory.mktemp("reference") / "model", public, SMOKE, progress=False)


def test_the_same_seed_gives_the_same_weights(data: tuple[Path, Path], reference: Path, tmp_path: Path) -> None:
    emails, public = data
    again = train([emails], tmp_path / "again", public, SMOKE, progress=False)
    assert _same(_weights(reference), _weights(again))
    training = json.loads((again / "training.json").read_text(encoding="utf-8"))
    assert training["steps"] == 6
    # trained on windows of SMOKE.window, saved to score with SMOKE.score_window
    assert json.loads((again / "config.json").read_text(encoding="utf-8"))["window"] == SMOKE.score_window
    assert training["data"]["public_rows_per_epoch"] * 2 == training["data"]["public_rows"]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
        data: tuple[Path, Path], reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emails, public = data
    out = tmp_path / "resumed"
    monkeypatch.setattr(training, "step_loss", _crash_at(5, training.step_loss))
    with pytest.raises(KeyboardInterrupt):
        train([emails], out, public, SMOKE, progress=False)
    monkeypatch.undo()
    assert (out / CHECKPOINT_DIR).is_dir()
    train([emails], out, public, SMOKE, resume=True, progress=False)
    assert _same(_weights(reference), _weights(out))
    assert not (out / CHECKPOINT_DIR).exists()


def test_resuming_with_other_settings_is_refused(data: tuple[Path, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    emails, public = data
    out = tmp_path / "other"
    monkeypatch.setattr(training, "step_loss", _crash_at(5, training.step_loss))
    with pytest.raises(KeyboardInterrupt):
        train([emails], out, public, SMOKE, progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="other training data or settings"):
        train([emails], out, public, replace(SMOKE, lr=1e-3), resume=True, progress=False)
