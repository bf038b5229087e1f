"""Classifier speed on this machine: fp32, bf16 and dynamic int8, side by side.

Measures, for each precision in its own subprocess (so peak RSS is its own):
model load time (base already cached), emails/s at ~100 and ~400 tokens,
single-email latency (p50 / p95) and peak RSS; and how far scores move: the
largest difference of a score from fp32's, and between a text scored alone
and the same text scored in a batch of 96 (int8's flaw). bf16 is only fast on CPUs that
compute it natively (AMX, AVX512-BF16); the header says whether this one does.

    .venv/bin/python bench/classify.py [--model DIR] [--threads 2] [--emails DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sample_texts(email_dir: Path, tokenizer, target: int, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """``count`` texts of about ``target`` tokens, built from the in-domain emails."""
    bodies = []
    for file in sorted(email_dir.glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                bodies.append(f"{row['subject']}\n\n{row['body']}")
            except (ValueError, KeyError):
                continue
    if not bodies:
        bodies = ["Hello, my licence key stopped working after the update and support does not answer."]
    texts: list[str] = []
    i = 0
    while len(texts) < count:
        ids: list[int] = []
        parts = []
        while len(ids) < target:
            body = bodies[i % len(bodies)]
            i += 1
            parts.append(body)
            ids += tokenizer.encode(body, add_special_tokens=False).ids
        text = "\n\n".join(parts)
        enc = tokenizer.encode(text, add_special_tokens=False)
        cut = enc.offsets[min(target, len(enc.ids)) - 1][1]
        texts.append(text[:cut])
    return texts


def measure(mode: str, model_dir: str | None, threads: int, email_dir: Path) -> dict:
    import torch

    from classifiers.model import WarningShotModel

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = WarningShotModel.load(model_dir, precision=mode, threads=threads)
    result: dict = {"mode": mode, "threads": threads, "load_s": time.perf_counter() - started}
    model.predict(["warm-up text"])
    batched: dict[int, list[dict[str, float]]] = {}
    for target, count in ((100, 96), (400, 32)):
        texts = sample_texts(email_dir, model.tokenizer, target, count)
        tokens = sum(len(model.tokenizer.encode(t).ids) for t in texts) / len(texts)
        started = time.perf_counter()
        batched[target] = model.predict(texts)
        elapsed = time.perf_counter() - started
        result[f"emails_per_s_{target}"] = len(texts) / elapsed
        result[f"mean_tokens_{target}"] = tokens
    # the same texts as the first 40 of the ~100-token batch (sample_texts is deterministic)
    singles = sample_texts(email_dir, model.tokenizer, 100, 40)
    latencies = []
    alone = []
    for text in singles:
        started = time.perf_counter()
        alone += model.predict([text])
        latencies.append(time.perf_counter() - started)
    result["scores_100"] = batched[100]
    result["batch_dependence"] = max(abs(a[k] - b[k]) for a, b in zip(alone, batched[100], strict=False) for k in a)
    latencies.sort()
    result["latency_p50_ms"] = 1000 * statistics.median(latencies)
    result["latency_p95_ms"] = 1000 * latencies[int(0.95 * (len(latencies) - 1))]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: models/warningshot)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--emails", type=Path, default=ROOT / "classifiers" / "data" / "emails")
    parser.add_argument("--modes", default="fp32,bf16,int8", help="precisions to compare (default: all three)")
    parser.add_argument("--mode", choices=["fp32", "bf16", "int8"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.model, args.threads, args.emails)))
        return
    rows = []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        cmd = [sys.executable, __file__, "--mode", mode, "--threads", str(args.threads), "--emails", str(args.emails)]
        if args.model:
            cmd += ["--model", args.model]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    fields = [
        ("model load (s, base cached)", "load_s", "{:.2f}"),
        ("emails/s @ ~100 tokens", "emails_per_s_100", "{:.1f}"),
        ("  (mean tokens)", "mean_tokens_100", "{:.0f}"),
        ("emails/s @ ~400 tokens", "emails_per_s_400", "{:.1f}"),
        ("  (mean tokens)", "mean_tokens_400", "{:.0f}"),
        ("single email p50 (ms)", "latency_p50_ms", "{:.0f}"),
        ("single email p95 (ms)", "latency_p95_ms", "{:.0f}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
    ]
    from classifiers.model import native_bf16

    print(f"threads={args.threads} native_bf16={native_bf16()}")
    print(f"{'':30}" + "".join(f"{mode:>10}" for mode in modes))
    for title, key, fmt in fields:
        print(f"{title:30}" + "".join(f"{fmt.format(r[key]):>10}" for r in rows))
    base = rows[0]["emails_per_s_100"]
    print(f"{'speed-up @ ~100 tokens':30}" + "".join(f"{r['emails_per_s_100'] / base:>9.2f}x" for r in rows))
    print(f"{'max |score alone - batched|':30}" + "".join(f"{r['batch_dependence']:>10.4f}" for r in rows))
    def drift(row: dict) -> float:
        return max(abs(a[k] - b[k]) for a, b in zip(row["scores_100"], rows[0]["scores_100"], strict=True) for k in a)

    print(f"{'max |score - ' + modes[0] + '|':30}" + "".join(f"{drift(r):>10.4f}" for r in rows))


if __name__ == "__main__":
    main()
