"""Retraining: corrections from the store, the gate, and judging real candidates without training.

The gate is tested twice: as a pure function on hand-made evaluations, and for
real on the test split with two candidates built from the shipped model
without any training: one whose head rows are permuted (every label scored by
another label's output, so it is clearly worse) and a plain copy (exactly as
good). Each is scored once per session (tens of seconds on CPU each); the
shipped model's own evaluation comes from models/eval/ when it still matches
the test split. These tests skip without the shipped model, like test_model.py.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import shipped_model_dir

from classifiers import dataset
from classifiers.base_model import sha256_file
from classifiers.gate import ALL, HARD_NEGATIVE_FPR, MACRO_F1, TEST_SET, GateConfig, judge
from classifiers.model import HEAD_FILE, MANIFEST_FILE
from classifiers.registry import ACTIVE_FILE, PASSED, PROMOTED, REFUSED, SHIPPED, TRAINING, Registry, Version
from classifiers.retrain import (
    EvalContext,
    Outcome,
    corrections_from_rows,
    judge_candidate,
    load_corrections,
    load_test_split,
)
from service.api.repository import save_feedback
from service.cli import main
from service.store import MessageRecord, Store

# ---- the gate as a pure function ------------------------------------------------------------


def evaluation(macro: float = 0.90, fpr: float = 0.10, emails: int = 200,
               languages: dict[str, tuple[int, float | None]] | None = None) -> dict:
    languages = languages if languages is not None else {"ar": (80, 0.85), "he": (70, 0.95), "nl": (20, 0.90)}
    return {"emails": emails, "macro_f1": macro, "hard_negatives": 50, "hard_negative_fpr": fpr,
            "languages": {lang: {"emails": n, "macro_f1": f1} for lang, (n, f1) in languages.items()}}


def test_an_equal_or_better_candidate_passes() -> None:
    assert judge(evaluation(), evaluation()).passed
    better = evaluation(0.93, 0.05, languages={"ar": (80, 0.90), "he": (70, 0.95), "nl": (20, 0.70)})
    result = judge(evaluation(), better)
    assert result.passed and not result.failed
    # nl has 20 test emails: too few to be judged on its own
    assert {(c.metric, c.scope) for c in result.checks} == {(MACRO_F1, ALL), (MACRO_F1, "ar"), (MACRO_F1, "he"),
                                                            (HARD_NEGATIVE_FPR, ALL)}


def test_a_drop_in_one_language_or_a_rise_in_false_positives_is_refused_by_name() -> None:
    worse = evaluation(0.91, 0.12, languages={"ar": (80, 0.80), "he": (70, 0.96), "nl": (20, 0.90)})
    result = judge(evaluation(), worse)
    assert not result.passed
    assert [(c.metric, c.scope, c.old, c.new) for c in result.failed] == [
        (MACRO_F1, "ar", 0.85, 0.80), (HARD_NEGATIVE_FPR, ALL, 0.10, 0.12)]
    assert result.as_dict()["failed"] == ["macro-F1 ar (80 emails): 0.850 -> 0.800",
                                          "hard-negative FPR all languages (50 hard negatives): 0.100 -> 0.120"]


def test_tolerances_and_the_language_size_are_configurable() -> None:
    slightly = evaluation(0.895, 0.11, languages={"ar": (80, 0.845), "he": (70, 0.95), "nl": (20, 0.5)})
    assert not judge(evaluation(), slightly).passed
    assert judge(evaluation(), slightly, GateConfig(tolerance=0.01, fpr_tolerance=0.02)).passed
    strict = judge(evaluation(), slightly, GateConfig(min_emails=10, tolerance=0.01, fpr_tolerance=0.02))
    assert [(c.metric, c.scope) for c in strict.failed] == [(MACRO_F1, "nl")]


def test_evaluations_on_different_test_sets_are_not_compared() -> None:
    result = judge(evaluation(), evaluation(emails=180))
    assert [(c.metric, c.scope) for c in result.failed] == [(TEST_SET, ALL)]
    assert "test set differs" in result.failed[0].describe()


# ---- corrections from the store ---------------------------------------------------------------


def _record(store: Store, uid: int, body: str | None, labels: list[str], lang: str = "en") -> int:
    with store.session() as s:
        rec = MessageRecord(mailbox="support", folder="INBOX", uidvalidity=1, uid=uid, message_id=f"<{uid}@x>",
                            subject=f"Ticket {uid}", language=lang, labels=labels, state="done", body=body,
                            scores={"abusive": 0.1, "extortion": 0.1, "legal_threat": 0.1})
        s.add(rec)
        s.flush()
        return rec.id


def test_corrections_without_a_body_are_skipped_and_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url, store_bodies=True)
    store.migrate()
    missed = _record(store, 1, "You are useless idiots, all of you.", [])
    no_body = _record(store, 2, None, ["abusive"])
    cleared = _record(store, 3, "Please delete my data under the GDPR, thanks.", ["legal_threat"], lang="de")
    save_feedback(store, missed, ["abusive"], note=None, actor="admin")
    save_feedback(store, no_body, [], note=None, actor="admin")
    save_feedback(store, cleared, [], note="not a threat", actor="admin")
    store.close()

    corrections = load_corrections(url, test=[])
    assert corrections.as_dict() == {"total": 3, "used": 2, "skipped_empty_body": 1, "skipped_invalid": 0,
                                     "skipped_in_test": 0, "hard_negatives": 1}
    by_id = {ex.id: ex for ex in corrections.examples}
    assert set(by_id) == {f"ws-{missed}", f"ws-{cleared}"}
    assert by_id[f"ws-{missed}"].targets == (1.0, 0.0, 0.0) and by_id[f"ws-{missed}"].split == "train"
    assert by_id[f"ws-{cleared}"].hard_negative and by_id[f"ws-{cleared}"].lang == "de"
    assert "useless idiots" in by_id[f"ws-{missed}"].text


def test_a_correction_that_is_a_test_email_is_not_trained_on() -> None:
    test = load_test_split()
    source = next(dataset.DEFAULT_EMAIL_DIR.glob("en.jsonl"))
    raw = next(row for row in map(json.loads, source.read_text(encoding="utf-8").splitlines())
               if dataset.email_split(row["scenario"]) == "test")
    row = {"id": "ws-1", "lang": "en", "subject": raw.get("subject") or "", "body": raw["body"],
           "labels": raw["labels"], "hard_negative": False}
    corrections = corrections_from_rows([row, {**row, "id": "ws-2", "labels": ["nonsense"]}], test)
    assert (corrections.skipped_in_test, corrections.skipped_invalid, len(corrections.examples)) == (1, 1, 0)


# ---- real candidates, scored on the test split ------------------------------------------------------

# Scoring two models on 450 emails took 1-3 min on the shared 2-core machine, and the
# module fixture runs inside the first test's timeout: hence timeout(900) below.


def _candidate(registry: Registry, *, permute_head: bool) -> Version:
    """A version copied from the shipped model; with ``permute_head`` its labels are scored by the wrong rows."""
    from safetensors.torch import load_file, save_file

    version = registry.create_version({"status": TRAINING, "parent": SHIPPED})
    for file in registry.shipped_dir.iterdir():
        shutil.copy2(file, version.path / file.name)
    if permute_head:
        head = load_file(str(version.path / HEAD_FILE))
        order = [1, 2, 0]
        save_file({"weight": head["weight"][order].contiguous(), "bias": head["bias"][order].contiguous()},
                  str(version.path / HEAD_FILE))
        manifest = json.loads((version.path / MANIFEST_FILE).read_text())
        manifest["files"][HEAD_FILE] = sha256_file(version.path / HEAD_FILE)
        (version.path / MANIFEST_FILE).write_text(json.dumps(manifest))
    return registry.get(version.name)


@dataclass
class Judged:
    registry: Registry
    ctx: EvalContext
    worse: Version
    copy: Version
    worse_outcome: Outcome
    copy_outcome: Outcome
    messages: list[str]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Judged:
    registry = Registry(tmp_path_factory.mktemp("registry") / "models", shipped_model_dir())
    ctx = EvalContext.create(load_test_split())
    worse, copy = _candidate(registry, permute_head=True), _candidate(registry, permute_head=False)
    messages: list[str] = []
    worse_outcome = judge_candidate(registry, worse, ctx, GateConfig(), echo=messages.append)
    copy_outcome = judge_candidate(registry, copy, ctx, GateConfig(), dry_run=True, echo=messages.append)
    return Judged(registry, ctx, worse, copy, worse_outcome, copy_outcome, messages)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_worse_candidate_is_refused_naming_the_failed_checks(judged: Judged) -> None:
    outcome, registry = judged.worse_outcome, judged.registry
    assert outcome.status == REFUSED and outcome.compared_with == SHIPPED
    failed = {(c.metric, c.scope) for c in outcome.result.failed}
    assert (MACRO_F1, ALL) in failed
    assert {scope for metric, scope in failed if metric == MACRO_F1} - {ALL}, "no language named"
    for check in outcome.result.failed:
        assert check.new is not None and check.old is not None
    assert not (registry.root / ACTIVE_FILE).exists() and registry.active_name() == SHIPPED
    report = registry.read_report(judged.worse.name)
    assert report["status"] == REFUSED and report["compared_with"] == SHIPPED
    assert report["gate"]["failed"] and report["note"].startswith("refused: macro-F1 all languages")
    assert report["test"]["candidate"]["macro_f1"] < report["test"]["active"]["macro_f1"]
    # a refused version stays inspectable, and switching to it needs --force
    config = registry.root.parent / "c.toml"
    config.write_text(f'[model]\npath = "{registry.shipped_dir}"\nregistry = "{registry.root}"\n')
    result = CliRunner().invoke(main, ["-c", str(config), "model", "use", judged.worse.name])
    assert result.exit_code == 1 and "--force" in result.output
    assert registry.active_name() == SHIPPED


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_copy_of_the_active_model_passes(judged: Judged) -> None:
    outcome, registry = judged.copy_outcome, judged.registry
    assert outcome.result.passed, [c.describe() for c in outcome.result.failed]
    assert outcome.status == PASSED and registry.active_name() == SHIPPED  # dry run
    report = registry.read_report(judged.copy.name)
    assert report["test"]["candidate"] == report["test"]["active"]
    # the copy was scored for real; equal numbers also vouch for the shipped model's cached evaluation
    assert any(m.startswith(f"  {judged.copy.name}: scoring") for m in judged.messages)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_promotion_moves_active_and_reuses_cached_evaluations(judged: Judged) -> None:
    registry, messages = judged.registry, []
    try:
        outcome = judge_candidate(registry, judged.copy, judged.ctx, GateConfig(), echo=messages.append)
        assert outcome.status == PROMOTED and outcome.promoted
        assert registry.active_name() == judged.copy.name
        assert (registry.root / ACTIVE_FILE).read_text() == judged.copy.name + "\n"
        assert not any("scoring" in m for m in messages), messages
        assert registry.read_report(judged.copy.name)["status"] == PROMOTED
    finally:
        registry.set_active(SHIPPED, how="test")
