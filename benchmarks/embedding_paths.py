"""MiniLM through sentence-transformers (dataprice's :class:`Embedder`) against the plain
transformers formula it replaced: the same vectors, and the time of each, in one process.

The baseline is the former code path: ``AutoModel`` on MiniLM, batches of 64 texts sorted by
length, token states mean-pooled under the attention mask (256 tokens at most) and
L2-normalised. Both run on the built-in ICD-10-CM corpus's documents and questions, cache
off, models loaded before timing; the runs alternate, and the median of ``--repeats`` is
reported, with the ratio (sentence-transformers / plain) and the largest difference of a
vector coordinate. Import times are measured in fresh processes.

    python benchmarks/embedding_paths.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = {
    "plain transformers": "import torch, transformers; from transformers import AutoModel, AutoTokenizer; "
                          "from transformers.models.bert import modeling_bert",
    "sentence-transformers": "import torch, transformers; from sentence_transformers import SentenceTransformer; "
                             "from transformers.models.bert import modeling_bert",
}


def plain(texts: list[str], tokenizer, model, batch_size: int = 64):
    import numpy as np
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    ordered = [texts[i] for i in order]
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(ordered), batch_size):
            batch = tokenizer(ordered[start:start + batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    out = np.empty((len(texts), 384), dtype=np.float32)
    out[order] = np.concatenate(chunks)
    return out


def import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    from transformers import AutoModel, AutoTokenizer

    from dataprice.data.corpus import icd10_corpus
    from dataprice.models.embedder import Embedder, load_sentence_model, minilm_folder

    corpus = icd10_corpus()
    texts = list(corpus.texts) + list(corpus.questions)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder(), local_files_only=True)
    model = AutoModel.from_pretrained(minilm_folder(), local_files_only=True).eval()
    load_sentence_model(None)
    times: dict[str, list[float]] = {"plain transformers": [], "sentence-transformers": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        reference = plain(texts, tokenizer, model)
        times["plain transformers"].append(time.perf_counter() - started)
        started = time.perf_counter()
        ours = Embedder(cache=False).encode(texts)
        times["sentence-transformers"].append(time.perf_counter() - started)
    diff = float(np.abs(ours - reference).max())
    cosine = float((ours * reference).sum(1).min())
    print(f"{len(texts)} texts (ICD-10-CM documents and questions), MiniLM, batches of 64, "
          f"median of {args.repeats}:")
    for name, seconds in times.items():
        print(f"  {name:22s} {statistics.median(seconds):6.2f} s   import {import_seconds(IMPORTS[name]):.2f} s")
    ratio = statistics.median(times["sentence-transformers"]) / statistics.median(times["plain transformers"])
    print(f"  ratio sentence-transformers / plain: {ratio:.3f}")
    print(f"  largest coordinate difference {diff:.2e}, smallest cosine {cosine:.7f}")


if __name__ == "__main__":
    main()
