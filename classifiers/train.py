"""Fine-tuning: LoRA on the upper encoder layers + a multi-label head, sized for a 2-core CPU.

The lower ``first_adapted_layer`` encoder layers (and the embeddings) stay
frozen, so their output is computed once per training window and cached;
each step then only runs (forward and backward) the upper layers. Emails
longer than one window are trained the way they are scored: the logits of
their windows are max-pooled (multiple-instance learning), so a threat in a
late window is not cut off.

Public rows only teach abusive vs none; their extortion/legal_threat targets
are masked out of the loss. In-domain emails are up-weighted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # type: ignore[import-untyped]

from classifiers import dataset
from classifiers.dataset import Example
from classifiers.interface import Thresholds
from classifiers.metrics import binary_report, choose_threshold
from classifiers.model import ModelConfig, WarningShotModel

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that decides the trained weights (saved in training.json)."""

    epochs: float = 5.0
    seed: int = 13
    batch_size: int = 32
    lr: float = 8e-4
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    # Public rows per epoch. With ``public_fresh_draws`` every epoch draws its own
    # rows (disjoint from the other epochs'), so the model sees several times more
    # public text for the same number of steps and the same in-domain share.
    public_rows: int = 4000
    public_fresh_draws: bool = True
    in_domain_weight: float = 3.0
    hard_negative_weight: float = 2.0
    max_windows: int = 4
    # Training-only long mails built from the train split (dataset.long_variants):
    # a threat among paragraphs of harmless detail, as in a real long ticket.
    long_variants: int = 600
    checkpoint_every: int = 50
    min_precision: float = 0.90
    int8_max_f1_drop: float = 0.01
    window: int = 256
    # Window the saved model scores with (0: ``window``). Chosen on dev: a mean
    # over 256 tokens dilutes one threatening sentence in a long mail (a lawsuit
    # threat after 500 tokens of plugin details scored 0.65), and 224 found it
    # (0.99) with dev macro-F1 0.936 against 0.934 at 256 and 0.933 at 192.
    score_window: int = 224
    first_adapted_layer: int = 6
    lora_r: int = 16
    lora_alpha: int = 32
    # Stop after this many optimizer steps (0: run every epoch); for smoke runs of the pipeline.
    max_steps: int = 0

    def model_config(self) -> ModelConfig:
        return ModelConfig(window=self.window, first_adapted_layer=self.first_adapted_layer,
                           lora_r=self.lora_r, lora_alpha=self.lora_alpha)


@dataclass(slots=True)
class Prepared:
    """One training example with its cached lower-layer states, one tensor per window."""

    example: Example
    hidden: list[torch.Tensor]
    weight: float

    @property
    def tokens(self) -> int:
        return sum(h.shape[0] for h in self.hidden)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fingerprint(examples: Sequence[Example], config: TrainConfig) -> str:
    """Identifies the data and settings a checkpoint belongs to."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    for ex in examples:
        digest.update(f"{ex.id}\0{ex.text}\0{ex.targets}\n".encode())
    return digest.hexdigest()


def cache_lower_layers(model: WarningShotModel, examples: Sequence[Example], config: TrainConfig,
                       device: torch.device, progress: bool = True) -> list[Prepared]:
    """Run the frozen embeddings + lower layers once over every training window."""
    windows, owners = model.windows([ex.text for ex in examples])
    keep: list[int] = []
    per_owner: dict[int, int] = {}
    for i, owner in enumerate(owners):
        per_owner[owner] = per_owner.get(owner, 0) + 1
        if per_owner[owner] <= config.max_windows:
            keep.append(i)
    windows = [windows[i] for i in keep]
    owners = [owners[i] for i in keep]
    states: list[torch.Tensor | None] = [None] * len(windows)
    model.encoder.eval()
    bar = tqdm(total=len(windows), desc="caching frozen layers", unit="window", disable=not progress)
    with torch.inference_mode():
        for chosen, batch in model.batches(windows):
            batch.input_ids, batch.attention_mask = batch.input_ids.to(device), batch.attention_mask.to(device)
            hidden = model.hidden_states(batch, 0, config.first_adapted_layer)
            for row, index in enumerate(chosen):
                states[index] = hidden[row, : len(windows[index])].clone()
            bar.update(len(chosen))
    bar.close()
    prepared = [Prepared(ex, [], _weight(ex, config)) for ex in examples]
    for owner, state in zip(owners, states, strict=True):
        assert state is not None
        prepared[owner].hidden.append(state)
    return prepared


def _weight(ex: Example, config: TrainConfig) -> float:
    if not ex.in_domain:
        return 1.0
    return config.in_domain_weight * (config.hard_negative_weight if ex.hard_negative else 1.0)


def public_draws(rows: Sequence[Example], config: TrainConfig) -> list[list[Example]]:
    """One balanced sample of public rows per epoch (a single one without fresh draws).

    The draws are dealt from one balanced sample of ``public_rows`` times their
    number, language by language and label by label, so they are disjoint,
    equally sized and balanced like the whole.
    """
    count = max(1, math.ceil(config.epochs)) if config.public_fresh_draws else 1
    sample = dataset.balanced_sample(rows, config.public_rows * count, config.seed)
    rng = random.Random(config.seed)
    groups: dict[tuple[str, float], list[Example]] = defaultdict(list)
    for row in sample:
        groups[(row.lang, row.targets[0])].append(row)
    draws: list[list[Example]] = [[] for _ in range(count)]
    dealt = 0
    for key in sorted(groups):
        rng.shuffle(groups[key])
        for row in groups[key]:
            draws[dealt % count].append(row)
            dealt += 1
    size = len(sample) // count
    return [sorted(draw[:size], key=lambda r: r.id) for draw in draws]


def epoch_members(emails: int, draw_size: int, draws: int, epoch: int) -> list[int]:
    """Indices into ``emails + draw 0 + draw 1 + ...`` of the items trained on in ``epoch``."""
    first = emails + (epoch % draws) * draw_size
    return list(range(emails)) + list(range(first, first + draw_size))


def epoch_batches(items: Sequence[Prepared], members: Sequence[int], epoch: int,
                  config: TrainConfig) -> list[list[int]]:
    """Shuffled, length-bucketed batches; a pure function of (seed, epoch) so --resume replays it."""
    rng = random.Random(config.seed * 1_000_003 + epoch)
    order = list(members)
    rng.shuffle(order)
    chunk = config.batch_size * 32
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: items[i].tokens)
        batches.extend(part[i : i + config.batch_size] for i in range(0, len(part), config.batch_size))
    rng.shuffle(batches)
    return batches


def step_loss(model: WarningShotModel, items: Sequence[Prepared], device: torch.device,
              first_layer: int) -> torch.Tensor:
    """Masked, weighted BCE of the max-over-windows logits of a batch."""
    states = [h for item in items for h in item.hidden]
    longest = max(h.shape[0] for h in states)
    hidden = torch.zeros((len(states), longest, states[0].shape[1]), device=device)
    mask = torch.zeros((len(states), longest), dtype=torch.long, device=device)
    for row, h in enumerate(states):
        hidden[row, : h.shape[0]] = h
        mask[row, : h.shape[0]] = 1
    batch = model.pad([[0]] * len(states))  # ids are unused once hidden states are given
    batch.attention_mask = mask
    top = model.hidden_states(batch, first_layer, None, hidden=hidden)
    logits = model.pooled_logits(top, mask)
    counts = [len(item.hidden) for item in items]
    pooled = torch.stack([chunk.max(dim=0).values for chunk in torch.split(logits, counts)])
    targets = torch.tensor([item.example.targets for item in items], device=device)
    weights = torch.tensor([[item.weight * m for m in item.example.mask] for item in items], device=device)
    loss = nn.functional.binary_cross_entropy_with_logits(pooled, targets, weight=weights, reduction="sum")
    return loss / weights.sum().clamp(min=1e-6)


def _trainable(model: WarningShotModel) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    adapters = [p for p in model.encoder.parameters() if p.requires_grad]
    return adapters, list(model.head.parameters())


def _save_checkpoint(path: Path, model: WarningShotModel, optimizer: torch.optim.Optimizer,
                     scheduler: Any, step: int, fp: str) -> None:
    from peft import get_peft_model_state_dict

    path.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step, "fingerprint": fp,
        "adapter": get_peft_model_state_dict(model.encoder), "head": model.head.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
    }
    tmp = path / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)


def _load_checkpoint(path: Path, model: WarningShotModel, optimizer: torch.optim.Optimizer,
                     scheduler: Any, fp: str) -> int:
    from peft import set_peft_model_state_dict

    state = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    if state["fingerprint"] != fp:
        raise ValueError(f"{path} belongs to other training data or settings; "
                         "start without --resume or delete the checkpoint")
    set_peft_model_state_dict(model.encoder, state["adapter"])
    model.head.load_state_dict(state["head"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return int(state["step"])


def select_thresholds(model: WarningShotModel, dev: Sequence[Example], min_precision: float) -> tuple[
        Thresholds, list[dict[str, float]]]:
    """Per-label thresholds chosen on the in-domain dev split."""
    scores = model.predict([ex.text for ex in dev])
    default = {}
    for i, label in enumerate(model.labels):
        default[label] = round(choose_threshold([ex.targets[i] for ex in dev], [s[label] for s in scores],
                                                min_precision), 4)
    return Thresholds(default), scores


def dev_f1(model_labels: Sequence[str], dev: Sequence[Example], scores: Sequence[dict[str, float]],
           thresholds: Thresholds) -> dict[str, float]:
    out = {}
    for i, label in enumerate(model_labels):
        rep = binary_report([ex.targets[i] for ex in dev], [s[label] for s in scores], thresholds.default[label])
        out[label] = rep.f1
    out["macro"] = float(np.mean([out[label] for label in model_labels]))
    return out


def train(email_paths: Sequence[Path | str], out: Path | str, public_dir: Path | str | None,
          config: TrainConfig, resume: bool = False, progress: bool = True,
          base_cache: Path | str | None = None, extra_train: Sequence[Example] = ()) -> Path:
    """Train, pick thresholds on dev, check int8 against fp32, and save the model into ``out``.

    ``extra_train`` are in-domain examples trained on whatever their split
    (corrections recorded by the daemon: each is its own scenario, so none can
    leak a paraphrase into dev or test).
    """
    started = time.time()
    out = Path(out)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seed_everything(config.seed)
    emails = dataset.load_emails(email_paths)
    train_split = [ex for ex in emails if ex.split == "train"]
    long = dataset.long_variants(train_split, config.long_variants, config.seed)
    train_emails = train_split + long + list(extra_train)
    dev = [ex for ex in emails if ex.split == "dev"]
    draws: list[list[Example]] = [[]]
    if public_dir is not None and config.public_rows > 0:
        draws = public_draws(dataset.load_public(public_dir, splits=("train",)), config)
    public = [row for draw in draws for row in draw]
    examples = train_emails + public
    if not train_emails:
        raise ValueError("no in-domain training emails found in " + ", ".join(map(str, email_paths)))
    log.info("training on %d emails + %d public rows per epoch (%d distinct) on %s; dev %d emails",
             len(train_emails), len(draws[0]), len(public), device, len(dev))
    fp = fingerprint(examples, config)

    model = WarningShotModel.create(config.model_config(), base_cache, seed=config.seed)
    model.encoder.to(device)
    model.head.to(device)
    t0 = time.time()
    items = cache_lower_layers(model, examples, config, device, progress)
    cache_seconds = time.time() - t0

    adapters, head = _trainable(model)
    optimizer = torch.optim.AdamW([{"params": adapters, "lr": config.lr},
                                   {"params": head, "lr": config.head_lr}], weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil((len(train_emails) + len(draws[0])) / config.batch_size)
    total = max(1, math.ceil(config.epochs * steps_per_epoch))
    if config.max_steps:
        total = min(total, config.max_steps)
    warm = max(1, int(total * config.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    checkpoint = out / CHECKPOINT_DIR
    step = 0
    if resume and (checkpoint / CHECKPOINT_FILE).is_file():
        step = _load_checkpoint(checkpoint, model, optimizer, scheduler, fp)
        log.info("resumed from %s at step %d of %d", checkpoint, step, total)

    model.encoder.train()
    model.head.train()
    t0 = time.time()
    losses: list[float] = []
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        members = epoch_members(len(train_emails), len(draws[0]), len(draws), epoch)
        batches = epoch_batches(items, members, epoch, config)
        for chosen in batches[offset:]:
            if step >= total:
                break
            loss = step_loss(model, [items[i] for i in chosen], device, config.first_adapted_layer)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(adapters + head, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", epoch=epoch)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, step, fp)
    bar.close()
    train_seconds = time.time() - t0

    model.encoder.eval()
    model.head.eval()
    model.encoder.to("cpu")
    model.head.to("cpu")
    if config.score_window:
        model.config = replace(model.config, window=config.score_window)
    thresholds, fp32_scores = select_thresholds(model, dev, config.min_precision) if dev else (
        model.thresholds, [])
    model.thresholds = thresholds
    model.training = {
        "config": asdict(config),
        "data": {"train_emails": len(train_emails), "extra_train_emails": len(extra_train),
                 "long_variants": len(long),
                 "public_rows": len(public), "public_rows_per_epoch": len(draws[0]),
                 "dev_emails": len(dev),
                 "email_sources": sorted({ex.source for ex in train_emails}),
                 "public_sources": sorted({ex.source for ex in public})},
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "seconds": {"cache": round(cache_seconds, 1), "train": round(train_seconds, 1)},
        "steps": total, "final_loss": float(np.mean(losses[-50:])) if losses else None,
    }
    saved = model.save(out)
    if dev:
        model.training.update(int8_check(saved, dev, config.int8_max_f1_drop, fp32_scores, base_cache))
    model.training["seconds"]["total"] = round(time.time() - started, 1)
    model.save(out)
    shutil.rmtree(checkpoint, ignore_errors=True)  # finished: nothing left to resume
    log.info("saved %s (%.0f s in all)", out, time.time() - started)
    return out


def int8_check(path: Path, dev: Sequence[Example], max_drop: float,
               fp32_scores: Sequence[dict[str, float]] | None = None,
               base_cache: Path | str | None = None) -> dict[str, Any]:
    """Dev F1 of the saved model in fp32 and int8; int8 is recommended when macro-F1 drops at most ``max_drop``.

    Macro-F1 rather than each label: with ~85 dev positives per label one email
    moves a label's F1 by ~0.006, so a per-label 0.01 bar would be decided by noise.
    The per-label numbers are recorded next to it.
    """
    fp32_model = WarningShotModel.load(path, base_cache, precision="fp32")
    texts = [ex.text for ex in dev]
    if fp32_scores is None:
        fp32_scores = fp32_model.predict(texts)
    thresholds = fp32_model.thresholds
    quantized = WarningShotModel.load(path, base_cache, precision="int8")
    fp32 = dev_f1(fp32_model.labels, dev, fp32_scores, thresholds)
    int8 = dev_f1(fp32_model.labels, dev, quantized.predict(texts), thresholds)
    drop = fp32["macro"] - int8["macro"]
    return {"dev_f1": {"fp32": fp32, "int8": int8}, "int8_macro_f1_drop": drop,
            "int8_recommended": bool(drop <= max_drop)}


def recheck_int8(path: Path, dev: Sequence[Example], max_drop: float = 0.01,
                 base_cache: Path | str | None = None) -> dict[str, Any]:
    """Re-run :func:`int8_check` on a saved model and record it in training.json (and the manifest).

    For when the quantisation recipe or torch changes after training: the
    recommendation must describe the int8 path this code actually builds.
    """
    from classifiers.base_model import sha256_file
    from classifiers.model import MANIFEST_FILE, TRAINING_FILE

    result = int8_check(path, dev, max_drop, None, base_cache)
    record = json.loads((path / TRAINING_FILE).read_text(encoding="utf-8"))
    record.update(result)
    (path / TRAINING_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                                      encoding="utf-8")
    manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["files"][TRAINING_FILE] = sha256_file(path / TRAINING_FILE)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """``config`` with the non-None overrides applied (for the CLI)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
