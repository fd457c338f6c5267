"""Annotated scenario templates that ``dataprice init`` writes.

Each template runs as written, on data dataprice builds itself, and says in comments where
a user's own files, models and settings go. Tests validate every template and run some at
``--small`` size, so a template never drifts from the schema.
"""

from __future__ import annotations

_COMMON_TAIL = """\
market:
  allocation: exact            # exact (best subset, up to 22 sellers) | greedy (any number)
  payment_rules: [loo, shapley, myerson, vcg]   # also pay_as_bid
  reserve: null                # highest report the buyer accepts (null: none)
  # value_basis: inrun         # pay on a valuation entry's values instead of the coalition values
bidding:
  strategy: truthful           # truthful | markup | random_markup | best_response | hedge
audit:
  grid_points: 21              # reports tried per seller when checking for profitable misreports
uncertainty:
  resamples: 100               # bootstrap draws of the evaluation set per replicate (0: off)
"""

TEMPLATES: dict[str, str] = {
    "classifier": """\
# A buyer trains a classifier on sellers' shards of a data set and pays them.
# Check it with `dataprice validate FILE`, try it with `dataprice run FILE --small`.
name: my_market
description: >-
  Eight sellers hold shards of the digits data; two of them mislabel most of theirs.
seed: 0
replicates: 1                  # draws of the data split and training
rounds: 1                      # repeated markets (with bidding strategies that learn)
sellers:
  count: 8
  costs: {distribution: uniform, low: 1.0, high: 10.0}   # or one number per seller: [1.0, 2.5, ...]
  # names: [lab_a, lab_b, ...]                           # one name per seller
  label_noise: {sellers: [6, 7], fraction: 0.8}          # sellers whose labels are redrawn
buyer:
  task: classifier
  dataset: digits              # breast_cancer | wine | digits, built from scikit-learn
  # table: {file: my_rows.csv, owner_column: owner, label_column: label}   # your own table instead:
  #                              one row per data point; sellers come from the owner column
  model: logistic              # logistic | knn, or estimator: {name: random_forest, params: {...}}
  value_per_quality: 100       # money per unit of validation accuracy
valuation:                     # each entry's values appear in the report and every statement
  - method: loo
  - method: exact_shapley      # exact over 2^n coalitions (up to 22 sellers)
  - method: tmc_shapley        # Monte Carlo, for larger markets
    max_evaluations: 2000
  # - method: inrun_shapley    # values from one SGD run, no retraining (label: inrun)
""" + _COMMON_TAIL,
    "dpo": """\
# A buyer fine-tunes a language model with DPO on sellers' preference pairs and pays them.
# SmolLM2-135M runs offline on CPU (minutes); `--small` uses a tiny test model (seconds).
name: my_preference_market
description: >-
  Four vendors sell coding preference pairs; vendor 3 prefers the wrong codes.
seed: 0
sellers:
  count: 4
  costs: {distribution: uniform, low: 1.0, high: 5.0}
buyer:
  task: dpo
  model: smollm2               # smollm2 | tiny | {path: my_model_folder} (a Hugging Face folder or .gguf)
  value_per_quality: 100       # money per unit of held-out preference accuracy
  preferences:
    source: medical            # built from ICD-10-CM; or source: files with
    #                            file: pairs.csv (prompt, chosen, rejected, owner[, price]) and
    #                            heldout_file: heldout.csv (prompt, chosen, rejected)
    sizes: [16, 24, 16, 24]    # pairs per vendor
    flipped_sellers: [3]
    n_heldout: 32
  training: {beta: 0.1, learning_rate: 0.001, epochs: 2, batch_size: 8, lora_r: 8}
  utility: accuracy            # accuracy | logsigmoid | generation
valuation:
  - method: loo
  - method: exact_shapley      # DPO Shapley: one policy per vendor, coalitions by arithmetic
  # - method: inrun_shapley    # one SGD run instead of one policy per vendor
  #   order: 1
  #   learning_rate: 0.05
""" + _COMMON_TAIL,
    "rag": """\
# A retrieval-augmented assistant buys sellers' documents and pays them for what it retrieves.
# Embeddings come from the offline MiniLM package (computed once, then cached).
name: my_document_market
description: >-
  Six sellers sell ICD-10-CM reference documents; seller 5 resells duplicates.
seed: 0
sellers:
  count: 6
  costs: {distribution: uniform, low: 1.0, high: 6.0}
buyer:
  task: rag
  value_per_quality: 100       # money per unit of hit@k over the questions
  corpus:
    source: icd10              # or source: files with your documents and questions (README)
    n_categories: 200
    n_questions: 100
    duplicate_sellers: [5]
  top_k: 3
  utility: retrieval           # retrieval | lm_reader | replay
  metric: hit                  # hit | mrr
valuation:
  - method: loo
  - method: exact_shapley
""" + _COMMON_TAIL,
    "federated": """\
# Sellers keep their data and train together by federated learning; the buyer pays each client.
name: my_federation
description: >-
  Six clients with non-IID shards; client 5 has noisy labels; FedRandom aggregation.
seed: 0
sellers:
  count: 6
  costs: {distribution: uniform, low: 1.0, high: 10.0}
  partition: {kind: dirichlet, alpha: 0.5}     # how unevenly the classes are split
  label_noise: {sellers: [5], fraction: 0.5}
buyer:
  task: federated
  dataset: breast_cancer       # or table: {file: my_rows.csv, ...} as for the classifier
  aggregator: fedrandom        # fedavg | fedavgm | fedadam | fedprox | fedrandom
  rounds: 20
  value_per_quality: 10
valuation:
  - method: loo
  - method: exact_shapley      # over coalitions rebuilt from the stored client updates
""" + _COMMON_TAIL,
}
