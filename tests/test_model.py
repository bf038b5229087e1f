"""WarningShotModel: persistence, integrity checks, windowing and evidence.

Most tests use a tiny real model: the real base encoder with random LoRA
adapters and a random head (training never runs in tests). Tests marked
``model`` need the shipped model in models/warningshot and skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shipped_model_dir

from classifiers.interface import LABELS, Classifier
from classifiers.model import (
    ADAPTER_FILE,
    CONFIG_FILE,
    HEAD_FILE,
    MANIFEST_FILE,
    THRESHOLDS_FILE,
    WarningShotModel,
    split_sentences,
)
from service.errors import ModelFilesError

TEXTS = [
    "Hello, my licence key does not activate on the staging site. Could you help?",
    "مرحبا، تم خصم المبلغ مرتين من بطاقتي. أرجو المساعدة؟",
    "שלום, האתר נפל שוב הבוקר. מתי זה יתוקן?",
    "Guten Tag, die Rechnung ist falsch.",
]
FILLER = (
    "Our WooCommerce store runs version 8.2 of your shipping plugin on PHP 8.1. After the last update the "
    "rates table shows zero for every zone except the default one, and the debug log prints a notice about "
    "an undefined index in the rate calculator. I cleared the caches, disabled the other plugins and switched "
    "to the default theme, and the problem is still there. "
)


@pytest.fixture(scope="module")
def tiny_model() -> WarningShotModel:
    model = WarningShotModel.create(seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.encoder.named_parameters():
            if "lora_B" in name:  # B starts at zero; make the adapters change the output
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=generator) * 0.1)
    model.encoder.eval()
    model.head.eval()
    return model


@pytest.fixture()
def saved(tiny_model: WarningShotModel, tmp_path: Path) -> Path:
    return tiny_model.save(tmp_path / "model")


def _matrix(scores: list[dict[str, float]]) -> np.ndarray:
    return np.array([[s[label] for label in LABELS] for s in scores])


def test_round_trip_gives_the_same_scores(tiny_model: WarningShotModel, saved: Path) -> None:
    before = _matrix(tiny_model.predict(TEXTS))
    loaded = WarningShotModel.load(saved, precision="fp32")
    np.testing.assert_allclose(_matrix(loaded.predict(TEXTS)), before, atol=1e-5)
    assert loaded.thresholds == tiny_model.thresholds
    assert isinstance(loaded, Classifier)


def test_int8_scores_stay_close(tiny_model: WarningShotModel, saved: Path) -> None:
    before = _matrix(tiny_model.predict(TEXTS))
    quantized = WarningShotModel.load(saved, precision="int8")
    assert np.abs(_matrix(quantized.predict(TEXTS)) - before).max() < 0.05


def test_bf16_scores_stay_close_and_barely_depend_on_the_batch(tiny_model: WarningShotModel, saved: Path) -> None:
    before = _matrix(tiny_model.predict(TEXTS))
    half = WarningShotModel.load(saved, precision="bf16")
    assert half.precision == "bf16"
    batched = _matrix(half.predict(TEXTS))
    assert np.abs(batched - before).max() < 0.05
    # int8's flaw was one activation scale per batch; bf16 rounds each value on its own
    alone = _matrix([half.predict([text])[0] for text in TEXTS])
    assert np.abs(alone - batched).max() < 0.02


def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import classifiers.model as model_module

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": False, "avx512_bf16": False})
    assert model_module.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert model_module.resolve_precision("auto") == model_module.resolve_precision(None) == "bf16"
    assert model_module.resolve_precision("int8") == "int8"
    with pytest.raises(ValueError, match="precision"):
        model_module.resolve_precision("fp16")


def test_saves_only_what_fine_tuning_adds(saved: Path) -> None:
    files = {p.name for p in saved.iterdir()}
    assert files == {ADAPTER_FILE, HEAD_FILE, CONFIG_FILE, THRESHOLDS_FILE, "training.json", MANIFEST_FILE}
    assert sum(p.stat().st_size for p in saved.iterdir()) < 10 * 1024 * 1024
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == files - {MANIFEST_FILE}


@pytest.mark.parametrize("name", [ADAPTER_FILE, HEAD_FILE, THRESHOLDS_FILE, MANIFEST_FILE])
def test_missing_file_is_named(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(ModelFilesError, match=name.replace(".", r"\.")):
        WarningShotModel.load(saved)


@pytest.mark.parametrize("name", [ADAPTER_FILE, CONFIG_FILE])
def test_corrupt_file_is_named(saved: Path, name: str) -> None:
    data = bytearray((saved / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved / name).write_bytes(bytes(data))
    with pytest.raises(ModelFilesError, match=rf"{name.replace('.', '[.]')} is corrupt"):
        WarningShotModel.load(saved)


def test_model_for_another_base_is_refused(saved: Path) -> None:
    from classifiers.base_model import sha256_file

    config = json.loads((saved / CONFIG_FILE).read_text())
    config["base_sha256"] = "0" * 64
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    manifest["files"][CONFIG_FILE] = sha256_file(saved / CONFIG_FILE)
    (saved / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelFilesError, match="base"):
        WarningShotModel.load(saved)


def test_missing_directory_is_a_model_files_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="does not exist"):
        WarningShotModel.load(tmp_path / "nowhere")


def test_windows_cover_every_token(tiny_model: WarningShotModel) -> None:
    ids = list(range(1000, 2000))
    windows = tiny_model.content_windows(ids)
    prefix = len(tiny_model.content_windows([])[0]) - 2
    assert len(windows) > 1
    assert all(len(w) <= tiny_model.config.window for w in windows)
    seen = {t for w in windows for t in w[1 + prefix : -1]}
    assert seen == set(ids)
    assert windows[-1][-2] == ids[-1]


def test_long_text_scores_are_the_max_over_windows(tiny_model: WarningShotModel) -> None:
    text = FILLER * 8 + "You are all useless idiots and I will sue you."
    windows, owners = tiny_model.windows([text])
    assert len(windows) >= 3 and set(owners) == {0}
    expected = torch.sigmoid(tiny_model.window_logits(windows).max(dim=0).values).tolist()
    got = tiny_model.predict([text])[0]
    np.testing.assert_allclose([got[label] for label in LABELS], expected, atol=1e-6)


def test_evidence_returns_a_sentence_of_the_input(tiny_model: WarningShotModel) -> None:
    text = "Hi team,\nThe export is broken again. Why?! I want a refund today؟ Thanks.\nMaria"
    evidence = tiny_model.evidence(text, list(LABELS))
    assert set(evidence) == set(LABELS)
    for sentence in evidence.values():
        assert sentence in split_sentences(text)
        assert sentence in text


def test_split_sentences_handles_scripts_and_lines() -> None:
    text = "שלום רב.\nזה לא עובד! למה؟ هذا سيء۔ OK?\n\n> quoted line\n---"
    assert split_sentences(text) == ["שלום רב.", "זה לא עובד!", "למה؟", "هذا سيء۔", "OK?", "> quoted line"]


def test_batches_bucket_by_length(tiny_model: WarningShotModel) -> None:
    windows = [[0] * n for n in (5, 200, 7, 180, 6)]
    sizes = [sorted(len(windows[i]) for i in chosen) for chosen, _ in tiny_model.batches(windows)]
    flat = [n for batch in sizes for n in batch]
    assert flat == sorted(flat) and sorted(flat) == [5, 6, 7, 180, 200]


# ---- the shipped model --------------------------------------------------------

@pytest.mark.model
def test_shipped_model_is_small() -> None:
    path = shipped_model_dir()
    assert sum(p.stat().st_size for p in path.iterdir() if p.is_file()) < 25 * 1024 * 1024


@pytest.mark.model
def test_threat_at_the_end_of_a_long_email_is_found(shipped_model: WarningShotModel) -> None:
    threat = "If the refund is not in my account by Friday, my lawyer will file a lawsuit against your company."
    long_text = "Subject: shipping rates broken\n\n" + FILLER * 6 + "\n\n" + threat
    assert len(shipped_model.windows([long_text])[0]) >= 3
    benign, hostile = shipped_model.predict([long_text.replace(threat, ""), long_text])
    cut = shipped_model.thresholds.for_label("legal_threat", "en")
    assert hostile["legal_threat"] >= cut > benign["legal_threat"]
    assert shipped_model.evidence(long_text, ["legal_threat"])["legal_threat"] == threat


@pytest.mark.model
def test_shipped_model_scores_plain_cases(shipped_model: WarningShotModel) -> None:
    plain, abusive = shipped_model.predict([
        "Hi, could you send me the invoice for order 4471 as a PDF? Thanks, Tom",
        "You are a bunch of useless, brain-dead idiots. Get me someone competent, you morons.",
    ])
    assert abusive["abusive"] >= shipped_model.thresholds.for_label("abusive", "en") > plain["abusive"]


@pytest.mark.model
def test_evaluate_can_score_with_another_window_and_says_which(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from classifiers.commands import evaluate_command

    mails = [(FILLER * 3, []), (FILLER * 3 + "I will sue you.", ["legal_threat"])]
    # scenario "w" falls in the test split
    rows = [{"id": f"w-{i}", "lang": "en", "variety": "", "scenario": "w", "product": "plugin",
             "subject": "shipping rates", "body": body, "labels": labels, "hard_negative": False}
            for i, (body, labels) in enumerate(mails)]
    data = tmp_path / "emails.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    reports = {}
    for window in (None, 128):
        out = tmp_path / f"eval-{window}.json"
        args = ["--data", str(data), "--split", "test", "--no-public", "--precision", "fp32", "--json", str(out)]
        result = CliRunner().invoke(evaluate_command, args + (["--window", str(window)] if window else []))
        assert result.exit_code == 0, result.output
        reports[window] = json.loads(out.read_text(encoding="utf-8"))
    shipped = json.loads((shipped_model_dir() / CONFIG_FILE).read_text(encoding="utf-8"))["window"]
    assert (reports[None]["window"], reports[128]["window"]) == (shipped, 128)
    assert reports[None]["in_domain"]["emails"] == reports[128]["in_domain"]["emails"] == 2
