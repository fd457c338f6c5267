"""Write the files two example scenarios use instead of a team's own model and vectors.

* ``scenarios/models/tiny-llm/``: the tiny random test LM (:func:`dataprice.models.lm.tiny_causal_lm`,
  0.15M parameters) saved with ``save_pretrained`` (config.json, model.safetensors, tokenizer):
  a stand-in for your causal-LM folder in ``scenarios/dpo_own_model.yaml``.
* ``scenarios/rag_embeddings_file/``: a small corpus of ICD-10-CM documents with three owners
  (documents.csv, questions.csv; clinic_c resells copies of the others' documents) and MiniLM's vectors of its texts (doc_vectors.npz,
  question_vectors.npz, arrays ``ids`` and ``vectors``): a stand-in for the vectors of your
  production retriever in ``scenarios/rag_embeddings_file.yaml``.

    PYTHONPATH=src python scripts/make_scenario_assets.py

Deterministic: running it again writes the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dataprice.data.corpus import icd10_corpus
from dataprice.models.embedder import Embedder
from dataprice.models.lm import tiny_causal_lm

ROOT = Path(__file__).resolve().parents[1] / "scenarios"


def tiny_llm(folder: Path) -> None:
    model, tokenizer = tiny_causal_lm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def vectors_example(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    corpus = icd10_corpus(3, n_categories=36, n_questions=24, codes_per_document=6, duplicate_sellers=[2], seed=11)
    owners = ["clinic_a", "clinic_b", "clinic_c"]
    pd.DataFrame({
        "doc_id": corpus.doc_ids, "owner": [owners[o] for o in corpus.owners], "text": corpus.texts,
    }).to_csv(folder / "documents.csv", index=False)
    pd.DataFrame({
        "question_id": corpus.question_ids, "question": corpus.questions, "gold_doc_id": corpus.gold_doc_ids,
    }).to_csv(folder / "questions.csv", index=False)
    embedder = Embedder(cache=False)
    np.savez(folder / "doc_vectors.npz", ids=np.array(corpus.doc_ids), vectors=embedder.encode(corpus.texts))
    np.savez(folder / "question_vectors.npz", ids=np.array(corpus.question_ids),
             vectors=embedder.encode(corpus.questions))


if __name__ == "__main__":
    tiny_llm(ROOT / "models" / "tiny-llm")
    vectors_example(ROOT / "rag_embeddings_file")
    print(f"written under {ROOT}")
