"""The per-query documents market built from a query log with per-document prices, through
the public path a user takes (a scenario YAML -> ``dataprice.api.load`` / ``dataprice run``),
checked query by query against brute force: Myerson = VCG = the critical price, LOO =
v(N) - v(N without the winner), Shapley over all candidates sums to v(N) with v(empty) = 0."""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import dataprice.api as dp
from dataprice.buyers.base import BuildContext
from dataprice.cli import main
from dataprice.data.querylog import load_query_log
from dataprice.market.kinds import PerQueryMarket
from dataprice.rng import Stream, child_rng

VALUE_PER_QUALITY = 3.0


def write_market(folder, *, n_docs=8, n_questions=12, per_question=(1, 5), seed=0, log_name="log.csv",
                 price_in="documents"):
    """Documents (one owner each, with a price), questions and a query log with ranks, in
    ``folder/data``; returns the log rows ``(question_id, doc_id, score, rank)``."""
    rng = child_rng(seed, Stream.DATA)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    prices = np.round(rng.uniform(0.1, 1.5, n_docs), 2)
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n_docs)], "owner": [f"o{i}" for i in range(n_docs)],
                         "text": [f"document {i}" for i in range(n_docs)]})
    if price_in == "documents":
        docs["price"] = prices
    docs.to_csv(data / "docs.csv", index=False)
    pd.DataFrame({"question_id": [f"q{i}" for i in range(n_questions)],
                  "question": [f"question {i}" for i in range(n_questions)]}).to_csv(data / "questions.csv", index=False)
    rows = []
    for q in range(n_questions):
        k = int(rng.integers(per_question[0], per_question[1] + 1))
        for rank, d in enumerate(rng.choice(n_docs, size=k, replace=False), start=1):
            score = float(np.round(rng.uniform(0.0, 1.0), 3)) if q % 7 else float(np.round(rng.uniform(0, 1)))
            rows.append((f"q{q}", f"d{d}", score, rank) + ((float(prices[d]),) if price_in == "log" else ()))
    columns = ["question_id", "doc_id", "score", "rank"] + (["price"] if price_in == "log" else [])
    log = pd.DataFrame(rows, columns=columns).sample(frac=1.0, random_state=seed)  # rank, not file order, counts
    if log_name.endswith(".csv"):
        log.to_csv(data / log_name, index=False)
    elif log_name.endswith(".jsonl"):
        log.to_json(data / log_name, orient="records", lines=True)
    else:
        log.to_parquet(data / log_name, index=False)
    return rows, dict(zip(docs["doc_id"], prices, strict=True))


def scenario_file(folder, *, log_name="log.csv", rules=None, scope="all", extra_buyer=None, sellers=None, **top):
    rules = rules or ["loo", "value_bought", "shapley", "myerson", "vcg", "pay_as_bid"]
    n_docs = len(pd.read_csv(folder / "data" / "docs.csv"))
    data = {
        "name": "query_log", "seed": 3,
        "sellers": sellers or {"count": n_docs},
        "buyer": {"task": "rag_single_document", "candidates_from": "query_log", "query_log": f"data/{log_name}",
                  "value_per_quality": VALUE_PER_QUALITY,
                  "corpus": {"source": "files", "documents": "data/docs.csv", "questions": "data/questions.csv"},
                  **(extra_buyer or {})},
        "valuation": [{"method": "loo"}],
        "market": {"payment_rules": rules, "shapley_scope": scope},
        "audit": {"grid_points": 5},
        **top,
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def built_market(path):
    """The market and costs exactly as ``dataprice run`` builds them for replicate 0."""
    from dataprice.experiment.replicate import replicate_seed

    scenario = dp.load(path)
    names = scenario.buyer.seller_names(scenario.sellers)
    costs = scenario.buyer.seller_costs(scenario, names)
    built = scenario.buyer.build(BuildContext(scenario, replicate_seed(scenario, 0), costs, names))
    return scenario, built, costs, names


# --- brute force, from the log's rows alone ----------------------------------------------------


def brute_force_query(cands, bids):
    """``cands``: ``[(owner, value, price weight)]`` of one query; ``bids`` per owner.
    Returns the winner's owner (or None) and each rule's per-owner payment in this query."""
    net = {o: v - bids[o] * w for o, v, w in cands}

    def welfare(owners):  # the buyer picks at most one candidate: W(S) = max(0, max net)
        return max([0.0, *(net[o] for o in owners)])

    def value(owners):  # v(S) = max(0, max_{d in S} v_d), no prices, v(empty) = 0
        return max([0.0, *(v for o, v, _ in cands if o in owners)])

    everyone = [o for o, _, _ in cands]
    best = welfare(everyone)
    winners = [o for o in everyone if net[o] == best and best > 0]
    pay = {rule: {} for rule in ("myerson", "vcg", "loo", "value_bought", "shapley_all")}
    # Shapley over all candidates, by the subset formula, v(empty) = 0
    n = len(everyone)
    for o in everyone:
        others = [x for x in everyone if x != o]
        phi = 0.0
        for size in range(n):
            for coalition in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                phi += weight * (value({*coalition, o}) - value(set(coalition)))
        pay["shapley_all"][o] = phi
    if not winners:
        return None, pay
    w = winners[0]
    weight = next(x for o, _, x in cands if o == w)
    # critical price: the largest report with which w still wins, by bisection on the rule "best net, if > 0"
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        trial = {**bids, w: mid}
        nets = {o: v - trial[o] * x for o, v, x in cands}
        top = max(nets.values())
        if nets[w] >= top and nets[w] > 0:
            lo = mid
        else:
            hi = mid
    pay["myerson"][w] = lo * weight
    # VCG (Clarke): b_w x_w + W(N) - W(N without w)
    pay["vcg"][w] = bids[w] * weight + best - welfare([o for o in everyone if o != w])
    # published LOO, removing the winner's owner
    pay["loo"][w] = value(set(everyone)) - value(set(everyone) - {w})
    pay["value_bought"][w] = next(v for o, v, _ in cands if o == w)
    return w, pay


def test_query_log_market_matches_brute_force_on_every_query(tmp_path):
    rows, prices = write_market(tmp_path)
    path = scenario_file(tmp_path)
    scenario, built, costs, names = built_market(path)
    market = built.market
    assert isinstance(market, PerQueryMarket)
    assert names == [f"o{i}" for i in range(8)] or sorted(names) == sorted(f"o{i}" for i in range(8))
    # one document per owner: the owner's cost is its document's price, and the price weight is 1
    np.testing.assert_allclose(costs, [prices[f"d{name[1:]}"] for name in names])
    owner_of = {f"d{name[1:]}": j for j, name in enumerate(names)}
    by_question: dict[str, list] = {}
    for q, d, score, _rank in sorted(rows, key=lambda r: (r[0], r[3])):
        by_question.setdefault(q, []).append((owner_of[d], VALUE_PER_QUALITY * score, 1.0))
    totals = {rule: np.zeros(len(names)) for rule in ("myerson", "vcg", "loo", "value_bought", "shapley_all")}
    question_ids = pd.read_csv(tmp_path / "data" / "questions.csv")["question_id"].tolist()
    bids = dict(enumerate(costs))
    checked = 0
    for q, question in enumerate(question_ids):
        cands = by_question.get(question, [])
        one = PerQueryMarket(market.values[q : q + 1], market.owners[q : q + 1], market.n_owners, "all",
                             None if market.weights is None else market.weights[q : q + 1])
        w, expected = brute_force_query(cands, bids)
        for rule in ("myerson", "vcg", "loo", "value_bought"):
            got = one.settle(costs, rule, costs).payments
            want = np.zeros(len(names))
            for o, p in expected[rule].items():
                want[o] = p
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{rule}, question {question}")
            totals[rule] += want
        np.testing.assert_allclose(one.settle(costs, "myerson").payments, one.settle(costs, "vcg").payments)
        shapley = one.settle(costs, "shapley", costs).payments
        want = np.zeros(len(names))
        for o, p in expected["shapley_all"].items():
            want[o] = p
        np.testing.assert_allclose(shapley, want, atol=1e-9, err_msg=f"shapley, question {question}")
        v_all = max([0.0, *(v for _, v, _ in cands)])
        assert shapley.sum() == pytest.approx(v_all)  # efficiency with v(empty) = 0
        totals["shapley_all"] += want
        checked += w is not None
    assert checked >= 6  # most questions sell a document
    # and the numbers a user reads in the report are these sums
    result = dp.run(scenario, progress=False)
    table = result.outcomes_table()
    for rule, name in (("myerson", "myerson"), ("vcg", "vcg"), ("loo", "loo"), ("value_bought", "value_bought"),
                       ("shapley_all", "shapley")):
        paid = table[table["rule"] == name].set_index("seller")["payment"]  # one replicate, one round
        np.testing.assert_allclose(paid.loc[names].to_numpy(), totals[rule], atol=1e-6, err_msg=rule)
    assert result.notes["rules"]["loo"].startswith("pays the winner of each query the published leave-one-out")
    assert "airport-game Shapley" in result.notes["rules"]["shapley"]


def test_cli_report_and_every_log_format_give_the_same_market(tmp_path):
    rows, _ = write_market(tmp_path)
    path = scenario_file(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    mech = pd.read_csv(tmp_path / "out" / "mechanisms.csv").set_index("rule")
    assert mech.loc["myerson", "total_paid"] == pytest.approx(mech.loc["vcg", "total_paid"])
    assert mech.loc["myerson", "max_misreport_gain"] <= 1e-9
    report = (tmp_path / "out" / "report.md").read_text()
    assert "published leave-one-out value v(N) - v(N without its owner)" in report
    _, first, _, _ = built_market(path)
    for name in ("log.jsonl", "log.parquet"):
        other = tmp_path / name.split(".")[1]
        other.mkdir()
        write_market(other, log_name=name)
        _, built, _, _ = built_market(scenario_file(other, log_name=name))
        np.testing.assert_array_equal(built.market.values, first.market.values)
        np.testing.assert_array_equal(built.market.owners, first.market.owners)


def test_prices_from_the_query_log_and_owners_with_several_documents(tmp_path):
    """Prices in the log; two documents per owner with different prices: one report per
    owner, in the unit of its mean list price (truthful report = that mean)."""
    rows, prices = write_market(tmp_path, price_in="log")
    docs = pd.read_csv(tmp_path / "data" / "docs.csv")
    docs["owner"] = [f"o{i // 2}" for i in range(len(docs))]
    docs.to_csv(tmp_path / "data" / "docs.csv", index=False)
    path = scenario_file(tmp_path, sellers={"count": 4})
    scenario, built, costs, names = built_market(path)
    mean = {f"o{k}": (prices[f"d{2 * k}"] + prices[f"d{2 * k + 1}"]) / 2 for k in range(4)}
    np.testing.assert_allclose(costs, [mean[n] for n in names])
    market = built.market
    # at truthful reports every candidate is offered at its own list price
    doc_price = {q: {} for q in range(market.values.shape[0])}
    for q, d, _s, _r, p in rows:
        doc_price[int(q[1:])][d] = p
    offered = market.prices(costs)
    for q in range(market.values.shape[0]):
        real = market.owners[q] >= 0
        np.testing.assert_allclose(sorted(offered[q][real]), sorted(doc_price[q].values()))
    # VCG stays truthful with one report for several own candidates, and Myerson equals it
    from dataprice.market.metrics import truthfulness_audit

    for rule in ("myerson", "vcg"):
        gain = truthfulness_audit(market.settle, rule, costs, span=market.value_span(), n_linear=41).gain
        assert np.nanmax(gain) <= 1e-9, rule
    np.testing.assert_allclose(market.settle(costs, "myerson").payments, market.settle(costs, "vcg").payments)


def test_two_thousand_owners_one_document_each_run_fast(tmp_path):
    write_market(tmp_path, n_docs=2000, n_questions=400, per_question=(3, 12), seed=5)
    path = scenario_file(tmp_path, rules=["loo", "shapley", "myerson", "vcg"], audit={"sample": 6, "grid_points": 5})
    started = time.perf_counter()
    assert dp.load(path).sellers.count == 2000  # the 2^n exact-allocation limit is the subset market's
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    seconds = time.perf_counter() - started
    mech = pd.read_csv(tmp_path / "out" / "mechanisms.csv").set_index("rule")
    assert mech.loc["myerson", "total_paid"] == pytest.approx(mech.loc["vcg", "total_paid"])
    assert seconds < 60, seconds


def test_a_subset_market_still_refuses_exact_allocation_over_22_sellers():
    with pytest.raises(Exception, match="needs at most 22 sellers in the subset market"):
        dp.load({"name": "t", "sellers": {"count": 30}, "buyer": {"task": "single_winner", "values": [1.0] * 30}})


# --- bad files: one line naming the file and the column, exit code 2, no report folder ----------


def _fails(tmp_path, capsys, path, *expected):
    out = tmp_path / "never"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert not out.exists()
    assert len(err.splitlines()) == 1, err
    for part in expected:
        assert part in err, err
    return err


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda log: log.assign(question_id=["nope", *log["question_id"][1:]]), ("log.csv", "'question_id'", "'nope'")),
        (lambda log: log.assign(doc_id=["zzz", *log["doc_id"][1:]]), ("log.csv", "'doc_id'", "'zzz'")),
        (lambda log: pd.concat([log, log.iloc[:1]]), ("log.csv", "'doc_id'", "logged twice")),
        (lambda log: log.drop(columns="score"), ("log.csv", "query log column 'score' is missing")),
        (lambda log: log.assign(score=["high", *log["score"][1:]]), ("log.csv", "'score'", "not a number")),
        (lambda log: log.assign(rank=[0, *log["rank"][1:]]), ("log.csv", "'rank'", "not a positive integer")),
    ],
)
def test_bad_query_logs_fail_with_one_line(tmp_path, capsys, edit, expected):
    write_market(tmp_path)
    log = pd.read_csv(tmp_path / "data" / "log.csv")
    edit(log).to_csv(tmp_path / "data" / "log.csv", index=False)
    _fails(tmp_path, capsys, scenario_file(tmp_path), *expected)


def test_empty_and_non_utf8_logs_fail_with_one_line(tmp_path, capsys):
    write_market(tmp_path)
    path = scenario_file(tmp_path)
    (tmp_path / "data" / "log.csv").write_text("")
    _fails(tmp_path, capsys, path, "log.csv", "empty")
    (tmp_path / "data" / "log.csv").write_bytes("question_id,doc_id,score\nq1,d1,0.5\nq2,d\xe9,1\n".encode("latin-1"))
    _fails(tmp_path, capsys, path, "log.csv", "not UTF-8")
    (tmp_path / "data" / "log.csv").write_text("question_id,doc_id,score\n")
    _fails(tmp_path, capsys, path, "log.csv", "no rows")


def test_price_mistakes_fail_with_one_line(tmp_path, capsys):
    write_market(tmp_path)
    docs = pd.read_csv(tmp_path / "data" / "docs.csv")
    # a negative price
    docs.assign(price=[-1.0, *docs["price"][1:]]).to_csv(tmp_path / "data" / "docs.csv", index=False)
    _fails(tmp_path, capsys, scenario_file(tmp_path), "docs.csv", "'price'", "must be >= 0")
    docs.to_csv(tmp_path / "data" / "docs.csv", index=False)
    # prices with pricing 'owner' are not ignored
    _fails(tmp_path, capsys, scenario_file(tmp_path, extra_buyer={"pricing": "owner"}), "docs.csv", "'price'",
           "pricing is 'owner'")
    # per-item prices are the costs: a cost list as well is refused
    err = dp_error(scenario_file(tmp_path, sellers={"count": 8, "costs": {f"o{i}": 0.1 for i in range(8)}},
                                 extra_buyer={"pricing": "item"}))
    assert "sellers.costs" in err
    # 'item' without any price column
    docs.drop(columns="price").to_csv(tmp_path / "data" / "docs.csv", index=False)
    _fails(tmp_path, capsys, scenario_file(tmp_path, extra_buyer={"pricing": "item"}), "docs.csv", "'price'")


def dp_error(path) -> str:
    with pytest.raises(Exception) as info:
        dp.load(path)
    return str(info.value)


def test_owner_costs_follow_names_not_the_order_of_first_appearance(tmp_path):
    """Owner pricing: a mapping by name is matched by name; a list of different costs with
    owners read from a file is refused; equal costs need no order."""
    write_market(tmp_path)
    docs = pd.read_csv(tmp_path / "data" / "docs.csv").drop(columns="price")
    docs.iloc[::-1].to_csv(tmp_path / "data" / "docs.csv", index=False)  # o7 appears first
    by_name = {f"o{i}": 0.1 * i for i in range(8)}
    scenario, _, costs, names = built_market(scenario_file(tmp_path, sellers={"count": 8, "costs": by_name}))
    assert costs is None and names[0] == "o7"
    from dataprice.experiment.run import run_scenario

    result = run_scenario(scenario, progress=False)
    assert dict(zip(result.seller_names, result.costs, strict=True)) == pytest.approx(by_name)
    err = dp_error(scenario_file(tmp_path, sellers={"count": 8, "costs": [0.1 * i for i in range(8)]}))
    assert "sellers.costs" in err and "no order to follow" in err
    listed = [f"o{i}" for i in range(8)]
    scenario = dp.load(scenario_file(tmp_path, sellers={"count": 8, "names": listed, "costs": [0.1 * i for i in range(8)]}))
    result = run_scenario(scenario, progress=False)
    assert dict(zip(result.seller_names, result.costs, strict=True)) == pytest.approx(by_name)


def test_load_query_log_orders_candidates_by_rank(tmp_path):
    from dataprice.data.corpus import load_corpus

    rows, _ = write_market(tmp_path)
    corpus = load_corpus(tmp_path / "data" / "docs.csv", tmp_path / "data" / "questions.csv", need_answers=False)
    log = load_query_log(tmp_path / "data" / "log.csv", corpus)
    assert log.n_rows == len(rows)
    for q, d, score, rank in rows:
        row = corpus.question_ids.index(q)
        assert log.docs[row, rank - 1] == corpus.doc_ids.index(d)
        assert log.scores[row, rank - 1] == score
    assert json.dumps(corpus.prices.tolist())


def test_owners_with_several_candidates_in_one_query_against_brute_force():
    """Owner-level games when an owner has several candidates in a query (a query log may
    list them): Shapley over all candidates and LOO against brute force over owners."""
    rng = child_rng(7, Stream.DATA)
    for _ in range(20):
        n_owners, q_count, m = 4, 3, 5
        owners = rng.integers(-1, n_owners, (q_count, m))
        values = np.round(rng.uniform(0, 2, (q_count, m)), 1)
        weights = rng.uniform(0.5, 1.5, (q_count, m))
        bids = rng.uniform(0, 1, n_owners)
        market = PerQueryMarket(values, owners, n_owners, "all", weights)
        shapley = market.settle(bids, "shapley").payments
        loo = market.settle(bids, "loo").payments
        want_shapley, want_loo = np.zeros(n_owners), np.zeros(n_owners)
        for q in range(q_count):
            cands = [(int(o), float(v)) for o, v in zip(owners[q], values[q], strict=True) if o >= 0]
            players = sorted({o for o, _ in cands})

            def value(members, cands=cands):
                return max([0.0, *(v for o, v in cands if o in members)])

            n = len(players)
            for o in players:
                others = [x for x in players if x != o]
                for size in range(n):
                    for coalition in itertools.combinations(others, size):
                        weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                        want_shapley[o] += weight * (value({*coalition, o}) - value(set(coalition)))
            net = [(v - bids[o] * weights[q, k], o) for k, (o, v) in enumerate(zip(owners[q], values[q], strict=True))
                   if o >= 0]
            best = max(net, default=(0.0, -1))
            if best[0] > 0:
                winner = next(o for x, o in net if x == best[0])
                want_loo[winner] += value(set(players)) - value(set(players) - {winner})
        np.testing.assert_allclose(shapley, want_shapley, atol=1e-9)
        np.testing.assert_allclose(loo, want_loo, atol=1e-9)
        np.testing.assert_allclose(market.settle(bids, "myerson").payments, market.settle(bids, "vcg").payments)


def test_a_document_listed_at_price_zero_is_sold_and_its_owner_selected(tmp_path):
    """A free document (price 0, its owner's other document is priced 1) that the buyer
    takes costs nothing (quantity 0: a price weight of 0 / 0.5), but its owner sold it: the
    outcome, the report's tables and a reopened run all say selected."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "docs.csv").write_text(
        "doc_id,owner,text,price\nd0,o0,zero,0\nd1,o1,one,0.5\nd2,o2,two,0.4\nd3,o0,three,1.0\n")
    (data / "questions.csv").write_text("question_id,question\nq0,a?\nq1,b?\n")
    (data / "log.csv").write_text("question_id,doc_id,score\nq0,d0,1.0\nq0,d1,0.2\nq1,d1,1.0\nq1,d2,0.3\n")
    path = scenario_file(tmp_path, rules=["myerson", "vcg"], sellers={"count": 3})
    _, built, costs, _ = built_market(path)
    outcome = built.market.settle(costs, "myerson", costs)
    assert outcome.quantities[0] == 0.0 and outcome.selected.tolist() == [True, True, False]
    assert outcome.payments[0] == pytest.approx(3.0 * (1.0 - 0.2) + 0.5 * 0.0 + 0.5)  # v - (v' - p') = 3 - (0.6 - 0.5)
    out = tmp_path / "out"
    assert main(["run", str(path), "--quiet", "--out", str(out)]) == 0
    rows = pd.read_csv(out / "outcomes.csv")
    assert rows.groupby("seller")["selected"].all().to_dict() == {"o0": True, "o1": True, "o2": False}
    reopened = dp.open_report(out).outcomes_table()
    assert reopened.groupby("seller")["selected"].all().to_dict() == {"o0": True, "o1": True, "o2": False}
