"""A per-query document market at real scale: each stage's time and peak memory, and growth.

Writes the files a team would bring (``documents.csv`` with a ``price`` column,
``questions.csv`` with gold documents, precomputed vectors ``docs.npz`` / ``questions.npz``:
synthetic unit vectors from a seeded numpy generator, with topic structure so that retrieval
means something: an owner's documents share its topics, each question lies near its gold
document, and 5% of documents are exact copies of another owner's, so ties happen) and a
``rag_single_document`` scenario over them (per-item prices, every per-query payment rule,
TMC Shapley with a fixed evaluation budget, one round, a small audit). Then, in a fresh
process per size, it times the project's own functions, the ones ``dataprice run`` calls:

* load: :func:`~dataprice.buyers.rag.corpus.build_corpus` and
  :func:`~dataprice.buyers.rag.corpus.embed` (corpus and vectors from the files);
* candidates: :func:`~dataprice.buyers.rag.retrieval.owner_candidates` (per query, the best
  document of each of the ``candidates`` most similar owners); the buyer's whole ``build``;
* settlement: :meth:`PerQueryMarket.settle` of all queries under each payment rule;
* Monte Carlo Shapley: ``tmc_shapley`` on the buyer's game, seconds per 1,000 coalitions;
* the run in process (:func:`~dataprice.experiment.run_scenario`) and the report
  (:func:`~dataprice.report.write_report`);

with the process's peak resident memory after each stage (``VmHWM``: a running peak);
then the whole ``dataprice run`` in a subprocess under ``/usr/bin/time -f %M`` (its peak RSS).

    python benchmarks/real_scale.py                          # 1,000 owners, 20,000 documents, 5,000 questions
    python benchmarks/real_scale.py --grow                   # owners 100..10,000 and documents 2,000..200,000
    python benchmarks/real_scale.py --dask                   # replicates: 2, serial vs a 2-worker Dask cluster
    python benchmarks/real_scale.py --minilm 500             # + MiniLM embedding cost per document
    python benchmarks/real_scale.py --small                  # a smoke test (seconds), not a measurement
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RULES = ["loo", "value_bought", "shapley", "myerson", "vcg", "pay_as_bid"]
#: a point whose largest arrays would pass this is skipped, not run (the machine has 24 GB)
MEMORY_LIMIT_GB = 20.0


def write_market(folder: Path, owners: int, documents: int, questions: int, *, dim: int = 384,
                 evaluations: int = 20_000, candidates: int = 10, replicates: int = 1, seed: int = 0) -> Path:
    """Write the user files and the scenario of one market into ``folder``; return the scenario."""
    import pandas as pd

    if documents < owners:
        raise SystemExit(f"--documents ({documents}) must be at least --owners ({owners}): every owner sells one")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_topics = max(8, owners // 4)
    centres = rng.standard_normal((n_topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner_topics = rng.integers(0, n_topics, (owners, 2))  # each owner writes on two topics
    owner = np.sort(np.concatenate([np.arange(owners), rng.integers(0, owners, documents - owners)]))
    topic = owner_topics[owner, rng.integers(0, 2, documents)]
    vectors = centres[topic] + 0.9 * rng.standard_normal((documents, dim)).astype(np.float32) / np.sqrt(dim)
    copies = rng.choice(documents, documents // 20, replace=False)  # resold exact copies of other documents
    vectors[copies] = vectors[rng.choice(documents, copies.size)]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    doc_ids = np.array([f"d{i:07d}" for i in range(documents)])
    names = np.array([f"owner_{o:05d}" for o in range(owners)])
    pd.DataFrame({
        "doc_id": doc_ids, "owner": names[owner],
        "text": [f"Notes of {names[o]} on topic {t}, part {i}." for i, (o, t) in enumerate(zip(owner, topic, strict=True))],
        "price": np.round(rng.uniform(0.05, 0.5, documents), 4),
    }).to_csv(folder / "documents.csv", index=False)
    gold = rng.integers(0, documents, questions)
    asked = vectors[gold] + 0.6 * rng.standard_normal((questions, dim)).astype(np.float32) / np.sqrt(dim)
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    question_ids = np.array([f"q{i:06d}" for i in range(questions)])
    pd.DataFrame({"question_id": question_ids, "question": [f"Question {i} about topic {topic[g]}?"
                                                            for i, g in enumerate(gold)],
                  "gold_doc_id": doc_ids[gold]}).to_csv(folder / "questions.csv", index=False)
    np.savez(folder / "docs.npz", ids=doc_ids, vectors=vectors)
    np.savez(folder / "questions.npz", ids=question_ids, vectors=asked)
    scenario = folder / "scenario.yaml"
    scenario.write_text(f"""# written by benchmarks/real_scale.py: synthetic vectors, {owners} owners
name: real_scale
description: >-
  {owners:,} owners sell {documents:,} priced documents; per query ({questions:,} questions) the buyer takes the
  document with the best value minus price among the {candidates} most similar owners' best documents.
seed: {seed}
replicates: {replicates}
rounds: 1
sellers:
  count: {owners}
buyer:
  task: rag_single_document
  pricing: item
  value_per_quality: 1.0
  candidates: {candidates}
  value_source: retrieval
  corpus: {{source: files, documents: documents.csv, questions: questions.csv}}
  embeddings: {{documents: docs.npz, questions: questions.npz}}
valuation:
  - method: tmc_shapley
    max_evaluations: {evaluations}
market:
  payment_rules: [{", ".join(RULES)}]
audit:
  sample: 10
  grid_points: 5
""")
    return scenario


def _peak_mb() -> float:
    """This process's peak resident memory, MiB: ``VmHWM`` (Linux; reset by exec), else
    ``ru_maxrss`` (which Linux carries over from the parent across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(scenario_path: Path) -> dict:
    """Time each stage of one run in this process (called in a fresh process per size)."""
    from dataprice.buyers.base import BuildContext
    from dataprice.buyers.rag.corpus import build_corpus, embed
    from dataprice.buyers.rag.retrieval import owner_candidates
    from dataprice.experiment import run_scenario
    from dataprice.experiment.replicate import replicate_seed
    from dataprice.report import write_report
    from dataprice.scenario import load_scenario
    from dataprice.valuation.game import CachedGame
    from dataprice.valuation.methods import METHODS

    stages: list[dict] = []

    def stage(name: str, started: float, **extra) -> None:
        stages.append({"stage": name, "seconds": time.perf_counter() - started, "peak_mb": _peak_mb(), **extra})

    t = time.perf_counter()
    scenario = load_scenario(scenario_path)
    buyer = scenario.buyer
    names = buyer.seller_names(scenario.sellers)
    costs = buyer.seller_costs(scenario, names)
    stage("validate scenario, read documents file", t)
    seed = replicate_seed(scenario, 0)
    t = time.perf_counter()
    corpus = build_corpus(buyer.corpus, scenario.sellers.count, seed)
    embedded = embed(corpus, buyer.embeddings)
    stage("load corpus + vectors", t)
    t = time.perf_counter()
    owner_candidates(embedded.documents, corpus.owners, embedded.questions, corpus.n_sellers,
                     min(buyer.candidates, corpus.n_sellers))
    stage("per-query candidates (best document of the most similar owners)", t)
    t = time.perf_counter()
    built = buyer.build(BuildContext(scenario, seed, costs, names, False))
    stage("buyer build (vectors, candidates, values, prices)", t)
    market = built.market
    for rule in scenario.market.payment_rules:
        t = time.perf_counter()
        market.settle(costs, rule, costs)
        stage(f"settle all queries: {rule}", t)
    spec = scenario.valuation[0]
    t = time.perf_counter()
    result = METHODS[spec.method].from_spec(spec, seed=seed).fit(CachedGame(built.game)).result
    seconds = time.perf_counter() - t
    stage(f"{spec.method} ({result.n_evaluations:,} coalitions)", t,
          per_1000=seconds / max(result.n_evaluations, 1) * 1000)
    t = time.perf_counter()
    run = run_scenario(scenario, progress=False)
    stage("whole run in process (run_scenario)", t)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        write_report(run, Path(out) / "report")
        stage(f"report ({len(names):,} seller rows, plots)", t)
    return {"owners": corpus.n_sellers, "documents": corpus.n_documents, "questions": corpus.n_questions,
            "stages": stages}


def _env(folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.setdefault("DATAPRICE_CACHE", str(folder / "cache"))
    size_mb = sum(p.stat().st_size for p in folder.glob("*.npz")) / 2**20
    env["DATAPRICE_MAX_INPUT_MB"] = str(max(256, int(2 * size_mb)))  # the vectors file may pass the default 256
    # faiss's OpenMP threads sleep instead of spinning while they wait: the same numbers (same
    # threads), 4x faster per-owner searches on 2 cores that other jobs share
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def run_cli(scenario: Path, out: Path, *extra: str, timeout: float | None = None) -> tuple[float, float]:
    """``dataprice run`` in a subprocess: (wall seconds, peak RSS in MiB)."""
    command = [sys.executable, "-m", "dataprice.cli", "run", str(scenario), "-q", "--out", str(out), *extra]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    started = time.perf_counter()
    if timer:
        done = subprocess.run([timer, "-f", "%M", *command], capture_output=True, text=True,
                              env=_env(scenario.parent), timeout=timeout)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"dataprice run failed:\n{done.stderr[-2000:]}")
        return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024
    subprocess.run(command, check=True, env=_env(scenario.parent), timeout=timeout, capture_output=True)
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure_in_subprocess(scenario: Path, timeout: float) -> dict | None:
    """:func:`measure` in a fresh Python process (``None`` if it passed ``timeout`` seconds)."""
    try:
        done = subprocess.run([sys.executable, __file__, "--measure", str(scenario)], capture_output=True, text=True,
                              env=_env(scenario.parent), timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"measuring {scenario} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def estimated_gb(owners: int, documents: int, questions: int, dim: int) -> float:
    """The largest arrays of a run: vectors (float32) read and copied, and the TMC batch's
    coalition matrix (at most 16 permutations of ``owners - 1`` prefixes)."""
    vectors = 3 * 4 * (documents + questions) * dim
    coalitions = min(16, max(1, 20_000 // max(owners - 1, 1))) * owners * owners
    return (vectors + coalitions) / 1e9


def print_stages(result: dict, label: str) -> None:
    print(f"\n{label}: {result['owners']:,} owners, {result['documents']:,} documents, "
          f"{result['questions']:,} questions")
    print("| stage | time | peak RSS so far |")
    print("|---|---|---|")
    for row in result["stages"]:
        extra = f" ({row['per_1000']:.2f} s per 1,000 coalitions)" if "per_1000" in row else ""
        print(f"| {row['stage']} | {row['seconds']:.3f} s{extra} | {row['peak_mb']:,.0f} MiB |")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--questions", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (MiniLM's is 384)")
    parser.add_argument("--evaluations", type=int, default=20_000, help="TMC Shapley budget (coalitions)")
    parser.add_argument("--grow", action="store_true", help="the growth series in owners and in documents")
    parser.add_argument("--dask", action="store_true", help="replicates: 2 on serial and on a 2-worker Dask cluster")
    parser.add_argument("--minilm", type=int, default=0, help="also embed N documents with MiniLM (cost per document)")
    parser.add_argument("--small", action="store_true", help="a smoke test in seconds (not a measurement)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per size before it is skipped")
    parser.add_argument("--keep", type=Path, default=None, help="write the files here (default: a temporary folder)")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:  # the worker: one size, in this fresh process
        print(json.dumps(measure(args.measure)))
        return
    if args.small:
        args.owners, args.documents, args.questions, args.evaluations, args.dim = 20, 400, 200, 400, 32
        print("SMOKE TEST (--small): 20 owners, 400 documents, 200 questions, 32-dim vectors; these timings "
              "say nothing about scale")
    print(f"machine: {os.cpu_count()} cores, load average {loadavg()} (1, 5, 15 min) at start; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')} in the measured processes")
    root = args.keep or Path(tempfile.mkdtemp(prefix="real_scale_"))
    try:
        point = root / f"o{args.owners}_d{args.documents}_q{args.questions}"
        scenario = write_market(point, args.owners, args.documents, args.questions, dim=args.dim,
                                evaluations=args.evaluations)
        result = measure_in_subprocess(scenario, args.timeout)
        if result is None:
            print(f"stages: over {args.timeout:.0f} s, stopped")
        else:
            print_stages(result, "SMOKE TEST stages" if args.small else "stages")
        seconds, peak = run_cli(scenario, point / "report")
        print(f"\n`dataprice run` end to end (subprocess): {seconds:.1f} s, peak RSS {peak:,.0f} MiB")
        if args.dask:
            dask_compare(root, args)
        if args.grow:
            grow(root, args)
        if args.minilm:
            minilm(args.minilm)
        print(f"\nload average {loadavg()} at the end")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def grow(root: Path, args) -> None:
    """Owners 100 -> 1,000 -> 10,000 (20 documents each) and documents 2,000 -> 20,000 ->
    200,000 (1,000 owners), each size in a fresh process."""
    points = [(100, 2000), (1000, 20_000), (10_000, 200_000), (1000, 2000), (1000, 200_000)]
    if args.small:
        points = [(10, 200), (20, 400), (40, 800)]
    print("\ngrowth (each size in a fresh process; stage times in s, peak RSS in MiB)")
    print("| owners | documents | load | candidates | buyer build | settle, 6 rules | TMC per 1,000 coalitions "
          "| run in process | report | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for owners, documents in points:
        need = estimated_gb(owners, documents, args.questions, args.dim)
        if need > MEMORY_LIMIT_GB:
            print(f"| {owners:,} | {documents:,} | skipped: about {need:.0f} GB of arrays | | | | | | | |")
            continue
        scenario = write_market(root / f"grow_o{owners}_d{documents}", owners, documents, args.questions,
                                dim=args.dim, evaluations=args.evaluations)
        result = measure_in_subprocess(scenario, args.timeout)
        if result is None:
            print(f"| {owners:,} | {documents:,} | skipped: over {args.timeout:.0f} s | | | | | | | |", flush=True)
            continue
        by = {row["stage"].split(" (")[0].split(":")[0]: row for row in result["stages"]}
        settle = sum(row["seconds"] for row in result["stages"] if row["stage"].startswith("settle"))
        tmc = next(row for row in result["stages"] if "per_1000" in row)
        print(f"| {owners:,} | {documents:,} | {by['load corpus + vectors']['seconds']:.1f} "
              f"| {by['per-query candidates']['seconds']:.1f} | {by['buyer build']['seconds']:.1f} | {settle:.2f} "
              f"| {tmc['per_1000']:.2f} | {by['whole run in process']['seconds']:.1f} | {by['report']['seconds']:.1f} "
              f"| {max(row['peak_mb'] for row in result['stages']):,.0f} |", flush=True)
        shutil.rmtree(scenario.parent, ignore_errors=True)


def dask_compare(root: Path, args) -> None:
    """``replicates: 2`` on the serial engine and on a local 2-worker Dask cluster; the
    payment tables must be identical (``scripts/compare_reports.py``)."""
    point = root / "dask"
    scenario = write_market(point, args.owners, args.documents, args.questions, dim=args.dim,
                            evaluations=args.evaluations, replicates=2)
    serial, serial_peak = run_cli(scenario, point / "serial")
    dask, dask_peak = run_cli(scenario, point / "dask", "--engine", "dask", "--workers", "2")
    compared = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_reports.py"), str(point / "serial"),
                               str(point / "dask")], capture_output=True, text=True)
    print(f"\nreplicates: 2, serial engine: {serial:.1f} s (peak RSS {serial_peak:,.0f} MiB); Dask, 2 local workers: "
          f"{dask:.1f} s (driver peak RSS {dask_peak:,.0f} MiB)")
    print(f"compare_reports serial vs dask: {compared.stdout.strip() or compared.stderr.strip()} "
          f"(exit {compared.returncode})")


def minilm(n: int) -> None:
    """MiniLM embedding cost per document (model loading not counted; cache off)."""
    sys.path.insert(0, str(ROOT / "src"))
    from dataprice.models.embedder import Embedder, load_sentence_model

    texts = [f"Notes on topic {i % 97}: patient presents with condition {i} and is treated daily." for i in range(n)]
    load_sentence_model(None)
    embedder = Embedder(cache=False)
    started = time.perf_counter()
    embedder.encode(texts)
    seconds = time.perf_counter() - started
    print(f"\nMiniLM: {n} short documents embedded in {seconds:.1f} s = {seconds / n * 1000:.1f} ms per document "
          f"(model loading not counted)")


if __name__ == "__main__":
    main()
