"""The fine-tuned WarningShot classifier: base encoder + LoRA adapters + a multi-label head.

What fine-tuning adds is small (LoRA matrices on the upper encoder layers and a
linear head, a few MB), so only that is shipped in the model directory; the
encoder itself is rebuilt from the pinned base package (:mod:`.base_model`).
Every file of the model directory is listed with its sha256 in
``manifest.json`` and checked on load, because a half-copied or mismatched
adapter would not fail loudly: it would just score mail wrongly.

Texts longer than one window are scored window by window (overlapping, stride
half a window) and the maximum per label is kept, so a threat in the fifth
paragraph counts as much as one in the first.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classifiers import base_model
from classifiers.interface import LABELS, Thresholds
from service.errors import ModelFilesError

log = logging.getLogger(__name__)

MODEL_FORMAT = "warningshot-model/1"
CONFIG_FILE = "config.json"
ADAPTER_FILE = "adapter.safetensors"
HEAD_FILE = "head.safetensors"
THRESHOLDS_FILE = "thresholds.json"
TRAINING_FILE = "training.json"
MANIFEST_FILE = "manifest.json"
REQUIRED_FILES = (CONFIG_FILE, ADAPTER_FILE, HEAD_FILE, THRESHOLDS_FILE, TRAINING_FILE)

# Sentence ends in the scripts we expect (Latin, Arabic ؟ and ۔, CJK), or line breaks.
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?؟۔。！？])\s+|\s*\n+\s*")
_HAS_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """How the encoder is adapted and how texts are fed to it (saved in config.json)."""

    labels: tuple[str, ...] = LABELS
    prefix: str = "query: "
    window: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    # Dropout is off inside the encoder: on CPU its random masks cost a third of a
    # training step (measured), and a few epochs of LoRA do not need it.
    lora_dropout: float = 0.0
    encoder_dropout: float = 0.0
    first_adapted_layer: int = 6
    target_modules: tuple[str, ...] = ("query", "key", "value", "dense")
    head_dropout: float = 0.1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("labels", "target_modules"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass(slots=True)
class Batch:
    """Padded token windows, with the index of the text each window came from."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    owners: list[int] = field(default_factory=list)


def split_sentences(text: str) -> list[str]:
    """Sentences (or lines) of ``text`` that contain at least one word character."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and _HAS_WORD.search(s)]


def default_model_dir() -> Path:
    """``$WARNINGSHOT_MODEL`` or ``<repo>/models/warningshot``."""
    env = os.environ.get("WARNINGSHOT_MODEL")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "models" / "warningshot"


def _lora_config(config: ModelConfig, n_layers: int) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=list(range(config.first_adapted_layer, n_layers)),
        layers_pattern="layer",
        bias="none",
    )


def _with_adapters(bert: Any, config: ModelConfig) -> Any:
    from peft import get_peft_model

    with warnings.catch_warnings():
        # peft asks transformers about gradient checkpointing through a name v5 renamed
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*is_gradient_checkpointing")
        return get_peft_model(bert, _lora_config(config, bert.config.num_hidden_layers))


def _is_ffn_output(name: str) -> bool:
    return name.endswith(".output.dense") and ".attention." not in name


PRECISIONS = ("fp32", "bf16", "int8")


def native_bf16() -> bool:
    """Whether this CPU computes bf16 itself (AMX or AVX512-BF16); elsewhere torch emulates it, slower than fp32."""
    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # an older torch that cannot say
        return False
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def resolve_precision(precision: str | None) -> str:
    """``auto`` (or None) becomes bf16 where the CPU has it natively, else fp32; the others stay."""
    if precision in (None, "auto"):
        return "bf16" if native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def _quantize(module: nn.Module) -> nn.Module:
    """Dynamic int8 for the encoder's Linear layers except the FFN output projections.

    The FFN output projection reads the GELU activations, whose outliers per-tensor
    int8 handles badly: quantising it too cost 0.10 abusive F1 on dev, leaving it
    in fp32 cost < 0.01 and keeps most of the speed-up (measured on the first model).
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    spec = {name: default_dynamic_qconfig for name, sub in module.named_modules()
            if isinstance(sub, nn.Linear) and not _is_ffn_output(name)}
    # torch marks eager-mode quantisation deprecated in favour of torchao, which is
    # not a dependency; the kernels still ship in torch and are what we measured.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.ao\.quantization")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*quantize_per_tensor")
        return quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True)  # the fp32 copy is dropped


class WarningShotModel:
    """Scores texts for every label; implements :class:`classifiers.interface.Classifier`."""

    def __init__(
        self,
        encoder: Any,
        tokenizer: Any,
        head: nn.Linear,
        config: ModelConfig,
        thresholds: Thresholds | None = None,
        training: Mapping[str, Any] | None = None,
        batch_tokens: int = 8192,
    ) -> None:
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.config = config
        self.labels: tuple[str, ...] = tuple(config.labels)
        self.thresholds = thresholds or Thresholds({label: 0.5 for label in self.labels})
        self.training = dict(training or {})
        self.batch_tokens = batch_tokens
        # The registry version it was loaded as ("shipped", "v2-..."); set by service.scoring.
        self.version = ""
        self._prefix_ids = tokenizer.encode(config.prefix.strip(), add_special_tokens=False).ids
        self._pad_id = tokenizer.token_to_id("<pad>")
        self._bos_id = tokenizer.token_to_id("<s>")
        self._eos_id = tokenizer.token_to_id("</s>")

    # ---- construction -------------------------------------------------
    @classmethod
    def create(cls, config: ModelConfig | None = None, base_cache: Path | str | None = None,
               seed: int = 0) -> WarningShotModel:
        """A fresh model for training: base encoder with new LoRA adapters and a new head."""
        config = config or ModelConfig()
        bert, tokenizer = base_model.load_base(base_cache)
        for module in bert.modules():
            if isinstance(module, nn.Dropout):
                module.p = config.encoder_dropout
        torch.manual_seed(seed)
        encoder = _with_adapters(bert, config)
        head = nn.Linear(bert.config.hidden_size, len(config.labels))
        return cls(encoder, tokenizer, head, config)

    @property
    def quantized(self) -> bool:
        """Whether the encoder runs dynamic int8 Linear layers."""
        from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

        return any(isinstance(m, DynamicQuantizedLinear) for m in self.encoder.modules())

    @property
    def precision(self) -> str:
        """What the encoder computes in, read from its weights (see load); the head always runs in fp32."""
        if self.quantized:
            return "int8"
        return "bf16" if next(self.bert.parameters()).dtype == torch.bfloat16 else "fp32"

    @property
    def bert(self) -> Any:
        """The underlying ``BertModel`` (inside the peft wrapper while training)."""
        from peft import PeftModel

        return self.encoder.get_base_model() if isinstance(self.encoder, PeftModel) else self.encoder

    # ---- tokenisation and windows ---------------------------------------
    def content_windows(self, ids: Sequence[int]) -> list[list[int]]:
        """Split content ids into overlapping model inputs ``<s> prefix chunk </s>``."""
        width = self.config.window - 2 - len(self._prefix_ids)
        stride = max(width // 2, 1)
        starts = list(range(0, max(len(ids) - width, 0) + 1, stride))
        if starts[-1] + width < len(ids):
            starts.append(len(ids) - width)
        return [[self._bos_id, *self._prefix_ids, *ids[s : s + width], self._eos_id] for s in starts]

    def windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """All windows of all texts, and for each window the index of its text."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        windows: list[list[int]] = []
        owners: list[int] = []
        for i, enc in enumerate(encodings):
            for window in self.content_windows(enc.ids):
                windows.append(window)
                owners.append(i)
        return windows, owners

    def batches(self, windows: Sequence[Sequence[int]]) -> Iterator[tuple[list[int], Batch]]:
        """Length-bucketed padded batches, each with the window indices it holds."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        start = 0
        while start < len(order):
            longest = len(windows[order[start]])
            end = start
            while end < len(order):
                longest = max(longest, len(windows[order[end]]))
                if (end - start + 1) * longest > self.batch_tokens and end > start:
                    break
                end += 1
            chosen = order[start:end]
            yield chosen, self.pad([windows[i] for i in chosen])
            start = end

    def pad(self, windows: Sequence[Sequence[int]]) -> Batch:
        longest = max(len(w) for w in windows)
        ids = torch.full((len(windows), longest), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
            mask[row, : len(window)] = 1
        return Batch(ids, mask)

    # ---- forward passes -------------------------------------------------
    def hidden_states(self, batch: Batch, start: int = 0, end: int | None = None,
                      hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Run encoder layers ``start..end`` (embeddings first when ``hidden`` is None).

        Split so that training can cache the output of the frozen lower layers once.
        """
        from transformers.masking_utils import create_bidirectional_mask

        bert = self.bert
        if hidden is None:
            hidden = bert.embeddings(input_ids=batch.input_ids)
        mask = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden,
                                         attention_mask=batch.attention_mask)
        for layer in bert.encoder.layer[start:end]:
            hidden = layer(hidden, mask)
        return hidden

    def pooled_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pool the last hidden states over real tokens and apply the head."""
        # Pooled and scored in fp32 whatever the encoder ran in: a bf16 sum over 256 tokens loses digits.
        hidden = hidden.float()
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        if self.head.training and self.config.head_dropout:
            pooled = nn.functional.dropout(pooled, self.config.head_dropout)
        return self.head(pooled)

    def window_logits(self, windows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Logits of every window, in the order given."""
        out = torch.empty((len(windows), len(self.labels)))
        with torch.inference_mode():
            for chosen, batch in self.batches(windows):
                hidden = self.hidden_states(batch)
                out[chosen] = self.pooled_logits(hidden, batch.attention_mask).float()
        return out

    # ---- Classifier protocol --------------------------------------------
    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Probability of every label per text: the maximum over the text's windows."""
        if not texts:
            return []
        windows, owners = self.windows(texts)
        logits = self.window_logits(windows)
        # windows() emits each text's windows contiguously, in text order
        counts = torch.bincount(torch.tensor(owners), minlength=len(texts)).tolist()
        best = torch.stack([chunk.max(dim=0).values for chunk in torch.split(logits, counts)])
        probs = torch.sigmoid(best).tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in probs]

    def evidence(self, text: str, labels: Sequence[str]) -> dict[str, str]:
        """For each of ``labels``, the sentence of ``text`` that scores highest for it."""
        sentences = split_sentences(text)
        if not sentences or not labels:
            return {}
        scores = self.predict(sentences)
        return {label: max(zip(scores, sentences, strict=True), key=lambda p: p[0][label])[1]
                for label in labels if label in self.labels}

    # ---- persistence ----------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write what fine-tuning adds, plus a manifest listing every file's sha256, into ``directory``."""
        from peft import PeftModel, get_peft_model_state_dict
        from safetensors.torch import save_file

        if not isinstance(self.encoder, PeftModel):
            raise ModelFilesError("only a model with unmerged adapters can be saved (load() "
                                  "merges them); save the model returned by create() or training")
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        try:
            adapter = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(self.encoder).items()}
            save_file(adapter, str(tmp / ADAPTER_FILE))
            head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, str(tmp / HEAD_FILE))
            config = {"format": MODEL_FORMAT, "base_sha256": base_model.BASE_SHA256,
                      "base_name": base_model.BASE_NAME, **asdict(self.config)}
            _write_json(tmp / CONFIG_FILE, config)
            _write_json(tmp / THRESHOLDS_FILE, {"default": dict(self.thresholds.default),
                                                "per_language": {k: dict(v) for k, v in
                                                                 self.thresholds.per_language.items()}})
            _write_json(tmp / TRAINING_FILE, self.training)
            files = {name: base_model.sha256_file(tmp / name) for name in REQUIRED_FILES}
            _write_json(tmp / MANIFEST_FILE, {"format": MODEL_FORMAT, "files": files})
            # file by file, manifest last: other files in the directory (a checkpoint, notes)
            # are left alone, and a reader never sees a manifest that vouches for missing files
            target.mkdir(exist_ok=True)
            for name in (*REQUIRED_FILES, MANIFEST_FILE):
                # safetensors writes 0600; the daemon may run as another user than training did.
                os.chmod(tmp / name, 0o644)
                os.replace(tmp / name, target / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def load(cls, directory: Path | str | None = None, base_cache: Path | str | None = None,
             precision: str | None = "fp32", threads: int | None = None) -> WarningShotModel:
        """Load a saved model; the adapters are merged into the encoder for speed.

        ``precision`` is what the encoder computes in (``auto``: see
        :func:`resolve_precision`):

        * ``fp32``, the reference;
        * ``bf16``: about 3x fp32 on CPUs with AMX or AVX512-BF16, the same test
          F1, scores within ~0.02 of fp32 and within ~0.01 whatever else is in
          the batch (padding changes the kernels' rounding); emulated and slower
          than fp32 elsewhere;
        * ``int8``: torch dynamic quantisation, 1.1-1.4x fp32. It takes one
          activation scale per batch, so a text's scores depend on the other
          texts (and their padding) in its batch, by up to ~0.4, and a draft's
          litmus score could differ from the daemon's; opt-in only
          (training.json's ``int8_recommended`` says whether the dev F1 drop
          was acceptable).
        """
        from peft import set_peft_model_state_dict
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(directory) if directory is not None else default_model_dir()
        files = verify_model_dir(path)
        config_data = files[CONFIG_FILE]
        if config_data.get("base_sha256") != base_model.BASE_SHA256:
            raise ModelFilesError(
                f"{path / CONFIG_FILE}: the model was trained on base {config_data.get('base_sha256')}, "
                f"but this installation's base is {base_model.BASE_SHA256}"
            )
        config = ModelConfig.from_dict(config_data)
        if threads:
            torch.set_num_threads(threads)
        bert, tokenizer = base_model.load_base(base_cache)
        encoder = _with_adapters(bert, config)
        try:
            adapter = load_file(str(path / ADAPTER_FILE))
            head_state = load_file(str(path / HEAD_FILE))
        except (SafetensorError, OSError) as exc:
            raise ModelFilesError(f"cannot read the weights in {path}: {exc}") from exc
        unexpected = getattr(set_peft_model_state_dict(encoder, adapter), "unexpected_keys", None)
        if unexpected:
            raise ModelFilesError(f"{path / ADAPTER_FILE} holds tensors this config does not expect: "
                                  f"{list(unexpected)[:5]}")
        head = nn.Linear(bert.config.hidden_size, len(config.labels))
        try:
            head.load_state_dict(head_state)
        except RuntimeError as exc:
            raise ModelFilesError(f"{path / HEAD_FILE} does not fit {len(config.labels)} labels: {exc}") from exc
        merged = encoder.merge_and_unload().eval()
        head.eval()
        precision = resolve_precision(precision)
        if precision == "int8":
            merged = _quantize(merged)
        elif precision == "bf16":
            merged = merged.to(torch.bfloat16)
        raw = files[THRESHOLDS_FILE]
        thresholds = Thresholds(dict(raw["default"]), {k: dict(v) for k, v in raw.get("per_language", {}).items()})
        missing = [label for label in config.labels if label not in thresholds.default]
        if missing:
            raise ModelFilesError(f"{path / THRESHOLDS_FILE} has no default threshold for {missing}")
        return cls(merged, tokenizer, head, config, thresholds, files[TRAINING_FILE])


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def verify_model_dir(path: Path) -> dict[str, Any]:
    """Check the manifest and every file's sha256; return the parsed JSON files.

    Raises :class:`ModelFilesError` naming the first file that is missing,
    corrupt or not listed.
    """
    if not path.is_dir():
        raise ModelFilesError(f"model directory {path} does not exist; train one with "
                              "`warningshot train` or point --model / WARNINGSHOT_MODEL at it")
    manifest_path = path / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
    except FileNotFoundError as exc:
        raise ModelFilesError(f"{manifest_path} is missing") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFilesError(f"{manifest_path} is not a valid manifest: {exc}") from exc
    for name in REQUIRED_FILES:
        if name not in listed:
            raise ModelFilesError(f"{manifest_path} does not list {name}")
    for name, expected in listed.items():
        file = path / name
        if not file.is_file():
            raise ModelFilesError(f"{file} is missing")
        actual = base_model.sha256_file(file)
        if actual != expected:
            raise ModelFilesError(f"{file} is corrupt: sha256 {actual}, manifest says {expected}")
    parsed: dict[str, Any] = {}
    for name in (CONFIG_FILE, THRESHOLDS_FILE, TRAINING_FILE):
        try:
            parsed[name] = json.loads((path / name).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelFilesError(f"{path / name} is not valid JSON: {exc}") from exc
    return parsed
