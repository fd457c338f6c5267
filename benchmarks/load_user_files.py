"""Load time and peak memory of user data files, and embedding throughput.

Writes documents files of about ``--sizes`` MB (documents of about 1 KB, in CSV and JSONL,
with commas, quotes and line breaks inside texts) and a small questions file, then loads
each with :func:`dataprice.data.corpus.load_corpus` in a fresh Python process and reports
the wall time of the call and the process's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), next to the peak after the imports only.
With ``--embed N`` it also embeds N of those documents with :class:`Embedder` (cache off)
and reports documents per second, model loading excluded.

    python benchmarks/load_user_files.py --sizes 50 250 --embed 300
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("patient presents with acute chronic pain fever cough diabetes mellitus type insulin dose "
         "daily tablet mg, left right knee \"mild\" severe history of hypertension asthma inhaled").split()

MEASURE = """
import resource, sys, time
from dataprice.data.corpus import load_corpus
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
corpus = load_corpus(sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(corpus.n_documents, corpus.n_sellers, seconds, base, peak)
"""


def documents(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pool = []
    for _ in range(500):
        words = rng.choices(WORDS, k=150)
        words[rng.randrange(150)] += "\n"  # a line break inside the text
        pool.append(" ".join(words)[:1000])
    return [{"doc_id": f"doc_{i:07d}", "owner": f"seller_{i % 16}", "text": pool[i % len(pool)]} for i in range(n)]


def write_documents(path: Path, megabytes: float) -> int:
    """Write about ``megabytes`` MB of documents; return how many."""
    n = int(megabytes * 1e6 / 1040)
    rows = documents(n)
    with path.open("w", encoding="utf-8") as fh:
        if path.suffix == ".csv":
            import csv

            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["doc_id", "owner", "text"])
            writer.writerows([r["doc_id"], r["owner"], r["text"]] for r in rows)
        else:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[50, 250], help="documents file sizes, MB")
    parser.add_argument("--formats", nargs="+", default=["csv", "jsonl"])
    parser.add_argument("--embed", type=int, default=0, help="documents to embed (0: skip)")
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        questions = folder / "questions.csv"
        questions.write_text("question_id,question,gold_doc_id,answer\nq1,What treats diabetes?,doc_0000001,insulin\n")
        print("| file | size | documents | load time | peak RSS after imports | peak RSS after loading |")
        print("|---|---|---|---|---|---|")
        for size in args.sizes:
            for fmt in args.formats:
                path = folder / f"documents.{fmt}"
                n = write_documents(path, size)
                out = subprocess.run(
                    [sys.executable, "-c", MEASURE, str(path), str(questions)],
                    capture_output=True, text=True, env={"PYTHONPATH": src}, check=True,
                ).stdout.split()
                docs, _, seconds, base, peak = int(out[0]), int(out[1]), float(out[2]), int(out[3]), int(out[4])
                assert docs == n, (docs, n)
                mb = path.stat().st_size / 1e6
                print(f"| {path.name} | {mb:,.0f} MB | {n:,} | {seconds:.1f} s | {base / 1024:,.0f} MiB "
                      f"| {peak / 1024:,.0f} MiB |", flush=True)
                path.unlink()
    if args.embed:
        sys.path.insert(0, src)
        from dataprice.models.embedder import Embedder, load_sentence_model

        texts = [d["text"] for d in documents(args.embed, seed=1)]
        start = time.perf_counter()
        load_sentence_model(None)
        loaded = time.perf_counter() - start
        embedder = Embedder(cache=False, progress=True)
        start = time.perf_counter()
        embedder.encode(texts)
        seconds = time.perf_counter() - start
        print(f"embedding: {len(texts)} documents of ~1 KB (256 tokens kept) in {seconds:.1f} s = "
              f"{len(texts) / seconds:.1f} documents/s (model loading {loaded:.1f} s, not counted)")


if __name__ == "__main__":
    main()
