"""Hostile user files: every data loader answers with a short one-line DataError naming the
file (and the line and column where it applies), or loads; never a traceback.

Each case writes a small file to ``tmp_path`` and calls the public loader a user's scenario
calls: :func:`load_corpus`, :func:`load_preferences`, :meth:`ReplayScorer.from_file`.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataprice.buyers.rag.game import ReplayScorer
from dataprice.data.corpus import load_corpus
from dataprice.data.preferences import load_preferences
from dataprice.errors import DataError

from ..conftest import fails

DOCS = [
    {"doc_id": "d1", "owner": "clinic_a", "text": "Aspirin treats pain."},
    {"doc_id": "d2", "owner": "clinic_b", "text": "Insulin treats diabetes."},
    {"doc_id": "d3", "owner": "clinic_a", "text": 'Salbutamol, "inhaled", treats asthma.\nA second line.'},
]
QUESTIONS = [
    {"question_id": "q1", "question": "What treats diabetes?", "gold_doc_id": "d2", "answer": "Insulin"},
    {"question_id": "q2", "question": "What treats pain?", "gold_doc_id": "", "answer": "Aspirin"},
    {"question_id": "q3", "question": "What treats asthma?", "gold_doc_id": "d3", "answer": ""},
]
PAIRS = [
    {"prompt": "Code for pain?\nAnswer:", "chosen": " R52", "rejected": " E11", "owner": "x"},
    {"prompt": "Code for diabetes?\nAnswer:", "chosen": " E11", "rejected": " R52", "owner": "y"},
    {"prompt": 'Code for "asthma", please?', "chosen": " J45", "rejected": " J44", "owner": "x"},
]
SCORES = [
    {"question_id": "q1", "doc_id": "d2", "score": 0.9},
    {"question_id": "q1", "doc_id": "d1", "score": 0.1},
    {"question_id": "q2", "doc_id": "d1", "score": 1.0},
]
FORMATS = ["csv", "tsv", "jsonl", "json"]
HUGE = "x" * 100_000


def write(path: Path, rows: list[dict]) -> Path:
    """``rows`` in the format of ``path``'s suffix (``None`` is JSON null / an empty cell)."""
    fmt = path.suffix[1:]
    if fmt in {"csv", "tsv"}:
        pd.DataFrame(rows).to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    elif fmt == "json":
        path.write_text(json.dumps(rows, indent=1))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path



@pytest.fixture
def files(tmp_path):
    """Valid documents and questions, and the corpus they load to."""
    docs, qs = write(tmp_path / "docs.csv", DOCS), write(tmp_path / "qs.csv", QUESTIONS)
    return docs, qs, load_corpus(docs, qs)


# --- valid files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_files_load_to_the_same_content_in_every_format(tmp_path, fmt):
    corpus = load_corpus(write(tmp_path / f"docs.{fmt}", DOCS), write(tmp_path / f"qs.{fmt}", QUESTIONS))
    assert corpus.doc_ids == ["d1", "d2", "d3"] and corpus.texts == [d["text"] for d in DOCS]
    assert corpus.seller_names == ["clinic_a", "clinic_b"] and corpus.owners.tolist() == [0, 1, 0]
    assert corpus.question_ids == ["q1", "q2", "q3"]
    assert corpus.gold_doc_ids == ["d2", None, "d3"] and corpus.answers == ["Insulin", "Aspirin", None]
    prefs = load_preferences(write(tmp_path / f"prefs.{fmt}", PAIRS))
    for column, values in [("prompt", prefs.prompts), ("chosen", prefs.chosen), ("rejected", prefs.rejected)]:
        assert values == [p[column] for p in PAIRS]  # leading spaces and newlines kept
    assert prefs.seller_names == ["x", "y"] and prefs.owners.tolist() == [0, 1, 0]
    held = load_preferences(tmp_path / f"prefs.{fmt}", owner_column=None)
    assert held.owners.tolist() == [-1, -1, -1]
    scores = ReplayScorer.from_file(write(tmp_path / f"judge.{fmt}", SCORES), corpus).scores
    expected = np.zeros((3, 3))
    expected[0, 1], expected[0, 0], expected[1, 0] = 0.9, 0.1, 1.0
    np.testing.assert_array_equal(scores, expected)


def test_json_numbers_are_read_as_their_text_and_a_bom_is_dropped(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"doc_id": 1, "owner": 7, "text": "Aspirin."}\n\n{"doc_id": 2, "owner": 8, "text": "x"}\n')
    qs = tmp_path / "qs.csv"
    qs.write_bytes("\ufeffquestion_id,question,gold_doc_id\nq1,What?,2\n".encode())
    corpus = load_corpus(docs, qs)
    assert corpus.doc_ids == ["1", "2"] and corpus.seller_names == ["7", "8"] and corpus.gold_doc_ids == ["2"]


# --- documents -------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", [{"doc_id": "d9", "owner": "a", "text": None}, {"doc_id": "d9", "owner": "a"}],
                         ids=["null", "absent"])
def test_a_document_without_text_names_the_line_and_column(files, tmp_path, row):
    _, qs, _ = files
    docs = write(tmp_path / "docs.jsonl", [*DOCS, row])
    fails(lambda: load_corpus(docs, qs), "docs.jsonl: line 4, column 'text': missing (null)")


@pytest.mark.parametrize("column", ["doc_id", "owner", "text"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_blank_or_null_document_fields_are_refused(files, tmp_path, column, value):
    _, qs, _ = files
    for fmt in ("csv", "jsonl"):
        docs = write(tmp_path / f"docs.{fmt}", [DOCS[0], {**DOCS[1], column: value}, DOCS[2]])
        fails(lambda d=docs: load_corpus(d, qs), f"docs.{fmt}: line {3 if fmt == 'csv' else 2}, column '{column}'")


def test_document_ids_are_unique(files, tmp_path):
    _, qs, _ = files
    docs = write(tmp_path / "docs.csv", [*DOCS, {**DOCS[2], "doc_id": "d1"}])
    # d3's text spans two lines, so the repeated id is on line 6
    fails(lambda: load_corpus(docs, qs),
          "docs.csv: line 6, column 'doc_id': document id 'd1' appears twice (first on line 2)")


def test_a_json_object_or_list_as_a_value_is_refused(files, tmp_path):
    _, qs, _ = files
    docs = write(tmp_path / "docs.jsonl", [DOCS[0], {**DOCS[1], "text": {"a": [HUGE]}}])
    fails(lambda: load_corpus(docs, qs), "line 2, column 'text': holds an object")
    docs = write(tmp_path / "docs.jsonl", [DOCS[0], {**DOCS[1], "owner": [1, 2]}])
    fails(lambda: load_corpus(docs, qs), "line 2, column 'owner': holds a list")


# --- questions ----------------------------------------------------------------------------------


def test_question_ids_are_unique_and_questions_not_empty(files, tmp_path):
    docs, _, _ = files
    qs = write(tmp_path / "qs.jsonl", [*QUESTIONS, {**QUESTIONS[0], "question": "Again?"}])
    fails(lambda: load_corpus(docs, qs),
          "qs.jsonl: line 4, column 'question_id': question id 'q1' appears twice (first on line 1)")
    for value in ("", " ", None):
        qs = write(tmp_path / "qs.jsonl", [QUESTIONS[0], {**QUESTIONS[1], "question": value}])
        fails(lambda q=qs: load_corpus(docs, q), "qs.jsonl: line 2, column 'question'")
    qs = write(tmp_path / "qs.jsonl", [{**QUESTIONS[0], "question_id": None}])
    fails(lambda: load_corpus(docs, qs), "qs.jsonl: line 1, column 'question_id': missing (null)")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_blank_gold_id_means_no_gold_only_when_there_is_an_answer(files, tmp_path, fmt):
    docs, _, _ = files
    for gold in (None, "", "  "):
        qs = write(tmp_path / f"qs.{fmt}", [QUESTIONS[0], {**QUESTIONS[1], "gold_doc_id": gold}])
        corpus = load_corpus(docs, qs)
        assert corpus.gold_doc_ids == ["d2", None] and corpus.answers == ["Insulin", "Aspirin"]
        qs = write(tmp_path / f"qs.{fmt}", [QUESTIONS[0], {**QUESTIONS[1], "gold_doc_id": gold, "answer": None}])
        fails(lambda q=qs: load_corpus(docs, q), f"qs.{fmt}: line 3" if fmt == "csv" else "qs.jsonl: line 2",
              "column 'gold_doc_id'", "question 'q2' has no gold document and no answer")
    qs = write(tmp_path / f"qs.{fmt}", [{**QUESTIONS[0], "gold_doc_id": HUGE}])
    fails(lambda: load_corpus(docs, qs), "column 'gold_doc_id': gold document 'xxx", "(100,002 characters) is not in")


# --- preference pairs -------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["prompt", "chosen", "rejected", "owner"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_a_null_or_blank_preference_field_names_the_line_and_column(tmp_path, column, fmt):
    for value in (None, "", " \t"):
        path = write(tmp_path / f"prefs.{fmt}", [PAIRS[0], {**PAIRS[1], column: value}])
        # CSV: PAIRS[0]'s prompt spans two lines; JSON: each record spans six lines
        line = 2 if fmt == "jsonl" else 4 if fmt == "csv" else 8
        fails(lambda p=path: load_preferences(p), f"prefs.{fmt}: line {line}, column '{column}'")


def test_the_owner_of_held_out_pairs_is_not_read(tmp_path):
    path = write(tmp_path / "prefs.jsonl", [{**p, "owner": None} for p in PAIRS])
    fails(lambda: load_preferences(path), "column 'owner': missing (null)")
    assert len(load_preferences(path, owner_column=None)) == 3


def test_chosen_equal_to_rejected_names_the_line(tmp_path):
    path = write(tmp_path / "prefs.jsonl", [PAIRS[0], {**PAIRS[1], "rejected": PAIRS[1]["chosen"]}])
    fails(lambda: load_preferences(path), "prefs.jsonl: line 2, column 'rejected': chosen == rejected")


# --- replay scores ------------------------------------------------------------------------------


def test_replay_file_errors(files, tmp_path):
    _, _, corpus = files
    judge = tmp_path / "judge.csv"
    judge.write_text("")
    fails(lambda: ReplayScorer.from_file(judge, corpus), "judge.csv: the replay file is empty")
    judge.write_text("question_id,doc_id,score\n")
    fails(lambda: ReplayScorer.from_file(judge, corpus), "judge.csv: the replay file has no rows")
    for bad in ("high", "0.5.1", "", HUGE):
        judge.write_text(f"question_id,doc_id,score\nq1,d1,0.5\nq1,d2,{bad}\n")
        fails(lambda: ReplayScorer.from_file(judge, corpus), "judge.csv: line 3, column 'score'")
    for bad in ("nan", "inf", "-inf", "NaN", "1e999"):
        judge.write_text(f"question_id,doc_id,score\nq1,d2,{bad}\n")
        fails(lambda: ReplayScorer.from_file(judge, corpus), "line 2, column 'score'", "is not a finite number")
    judge = tmp_path / "judge.jsonl"
    for bad in ("NaN", "Infinity", "-Infinity", "null", '"x"', "true", "[1]"):
        judge.write_text(f'{{"question_id": "q1", "doc_id": "d2", "score": {bad}}}\n')
        fails(lambda: ReplayScorer.from_file(judge, corpus), "judge.jsonl: line 1, column 'score'")
    write(judge, [*SCORES, {**SCORES[0], "score": 0.3}])
    fails(lambda: ReplayScorer.from_file(judge, corpus),
          "judge.jsonl: line 4, columns 'question_id' and 'doc_id'", "scored twice (first on line 1)")
    write(judge, [SCORES[0], {**SCORES[1], "doc_id": HUGE}])
    fails(lambda: ReplayScorer.from_file(judge, corpus), "line 2, column 'doc_id': document 'xxx")
    write(judge, [SCORES[0], {**SCORES[1], "question_id": None}])
    fails(lambda: ReplayScorer.from_file(judge, corpus), "line 2, column 'question_id': missing (null)")


def test_a_replay_file_with_another_suffix_is_read_as_csv(files, tmp_path):
    _, _, corpus = files
    judge = tmp_path / "judge.txt"
    judge.write_text("question_id,doc_id,score\nq1,d2,0.9\n")
    assert ReplayScorer.from_file(judge, corpus).scores[0, 1] == 0.9
    judge.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    fails(lambda: ReplayScorer.from_file(judge, corpus), "judge.txt: not UTF-8 text (byte 0x89 on line 1)")


# --- bytes, paths, sizes --------------------------------------------------------------------------


def _loaders(files, tmp_path):
    """``(suffix, loader)`` for each kind of user file; the loader reads the given path."""
    docs, qs, corpus = files
    return [
        ("documents", lambda p: load_corpus(p, qs)),
        ("questions", lambda p: load_corpus(docs, p)),
        ("preference", load_preferences),
        ("replay", lambda p: ReplayScorer.from_file(p, corpus)),
    ]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_binary_or_non_utf8_files(files, tmp_path, suffix):
    for what, load in _loaders(files, tmp_path):
        path = tmp_path / f"bad.{suffix}"
        path.write_bytes(b"doc_id,owner,text\nd1,a,caf\xe9\n")
        fails(lambda p=path, f=load: f(p), f"bad.{suffix}: not UTF-8 text (byte 0xe9 on line 2); a {what} file")
        path.write_bytes(b"doc_id,owner,text\nd1,a,x\x00y\n")
        fails(lambda p=path, f=load: f(p), f"bad.{suffix}: contains a NUL byte on line 2")
        path.write_bytes(bytes(range(256)) * 4)
        fails(lambda p=path, f=load: f(p), f"bad.{suffix}: ")


def test_paths_that_are_not_regular_files(files, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    (tmp_path / "folder.csv").mkdir()
    for what, load in _loaders(files, tmp_path):
        fails(lambda f=load: f(tmp_path / "folder.csv"), f"{what} file", "is a directory")
        fails(lambda f=load: f(fifo), f"{what} file", "is not a regular file")  # returns at once, does not block
        fails(lambda f=load: f(str(tmp_path / "a\x00b.csv")), f"{what} file: the path contains a NUL byte")
        fails(lambda f=load: f(tmp_path / "missing.csv"), f"{what} file not found", "missing.csv")
        fails(lambda f=load: f(tmp_path / "missing" / "x.jsonl"), f"{what} file not found")
        (tmp_path / "table.xlsx").write_text("x")
        if what != "replay":  # the replay loader reads any other suffix as CSV
            fails(lambda f=load: f(tmp_path / "table.xlsx"), f"unsupported {what} format '.xlsx'")


def test_files_over_the_size_limit_are_refused_before_reading(files, tmp_path, monkeypatch):
    monkeypatch.setenv("DATAPRICE_MAX_INPUT_MB", "0.001")  # 1,048 bytes
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({**DOCS[0], "text": "y" * 2_000}) + "\n")
    for what, load in _loaders(files, tmp_path):
        fails(lambda f=load: f(big), f"{what} file", "big.jsonl", "the limit is",
              "raise it with DATAPRICE_MAX_INPUT_MB")


# --- malformed tables -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("[1, 2]", "line 2: expected a JSON object with the documents columns, got a list"),
    ("42", "line 2: expected a JSON object with the documents columns, got a number"),
    ('"text"', "got a string"),
    ("null", "got null"),
    ('{"doc_id": "d9", "owner": "a", "text": "x"', "line 2, character 43: not valid JSON"),
    ('{"doc_id": "d9"} {"owner": "a"}', "line 2: not valid JSON (extra data after the value"),
    ("{'doc_id': 'd9'}", "line 2, character 2: not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "line 2: JSON nested too deeply"),
    ('{"doc_id": "d9", "owner": "a", "text": ' + "[" * 100_000 + "}", "line 2: JSON nested too deeply"),
    ('{"doc_id": ' + "9" * 5_000 + "}", "line 2: not valid JSON (a number with too many digits)"),
])
def test_malformed_json_lines_name_the_line(files, tmp_path, line, expected):
    _, qs, _ = files
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps(DOCS[0]) + "\n" + line + "\n" + json.dumps(DOCS[1]) + "\n")
    fails(lambda: load_corpus(docs, qs), "docs.jsonl: ", expected)
    docs.write_text(line + "\n" + json.dumps(DOCS[1]) + "\n")  # a first line that is a list is no JSON array
    fails(lambda: load_corpus(docs, qs), "docs.jsonl: ", expected.replace("line 2", "line 1"))


@pytest.mark.parametrize(("text", "expected"), [
    ('[{"doc_id": "d1", "owner": "a", "text": "x"},\n 3]', "line 2: expected a JSON object"),
    ('[{"doc_id": "d1", "owner": "a", "text": "x"}\n {"doc_id": "d2"}]', "line 2: not valid JSON (expected ',' or ']'"),
    ('[{"doc_id": "d1", "owner": "a", "text": "x"},\n {"doc_id": "d2"', "line 2, character 17: not valid JSON"),
    ('[{"doc_id": "d1", "owner": "a", "text": "x"}]\n]', "line 2: not valid JSON (extra data after the closing ']')"),
    ("[]", "the documents file has no rows"),
    ("[" * 100_000, "JSON nested too deeply"),
])
def test_malformed_json_arrays_name_the_line(files, tmp_path, text, expected):
    _, qs, _ = files
    docs = tmp_path / "docs.json"
    docs.write_text(text)
    fails(lambda: load_corpus(docs, qs), "docs.json: ", expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("doc_id,owner,text\nd1,a,x,extra\n", "line 2: 4 fields, but the header has 3"),
    ('doc_id,owner,text\nd1,a,"open quote\nd2,b,y\n', "line 2: not valid CSV (a quoted value is not closed"),
    ('doc_id,owner,text\nd1,a,"x"y\n', "line 2: not valid CSV (text after a closing quote"),
    ("doc_id,owner,text\nd1,a\n", "line 2, column 'text': missing (null)"),
    ("doc_id,owner,text,text\nd1,a,x,y\n", "line 1: column 'text' appears twice in the header"),
    ("doc_id,owner\n" + "d1,a\n", "documents column 'text' is missing; columns found: doc_id, owner"),
    ("doc_id,owner," + ",".join(f"c{i}" for i in range(5_000)) + "\nd1,a\n", "columns found: doc_id, owner, c0,"),
    ("doc_id,owner,text\r\nd1,a,x\r\nd1,b,y\r\n", "line 3, column 'doc_id': document id 'd1' appears twice"),
    ("\n\n", "the documents file is empty"),
    ("doc_id,owner,text\n\n\n", "the documents file has no rows"),
])
def test_malformed_csv_names_the_line(files, tmp_path, text, expected):
    _, qs, _ = files
    docs = tmp_path / "docs.csv"
    docs.write_text(text)
    fails(lambda: load_corpus(docs, qs), "docs.csv", expected)


def test_huge_values_are_quoted_as_a_short_excerpt(files, tmp_path):
    docs, qs, corpus = files
    path = write(tmp_path / "docs.jsonl", [{**DOCS[1], "doc_id": HUGE}, {**DOCS[2], "doc_id": HUGE}])
    fails(lambda: load_corpus(path, qs),
          "line 2, column 'doc_id': document id 'xxx", "(100,002 characters) appears twice")
    path = tmp_path / "judge.csv"
    path.write_text(f"question_id,doc_id,score\n{HUGE},d1,1\n")
    fails(lambda: ReplayScorer.from_file(path, corpus), "line 2, column 'question_id': question 'xxx")
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({**PAIRS[0], "chosen": HUGE, "rejected": HUGE}) + "\n")
    fails(lambda: load_preferences(path), "line 1, column 'rejected': chosen == rejected")
    path.write_text(json.dumps({**PAIRS[0], HUGE: 1}) + "\n" + json.dumps({"prompt": " "}) + "\n")
    fails(lambda: load_preferences(path), "line 2, column 'prompt': empty")
    path.write_text(json.dumps({HUGE: 1}) + "\n")
    fails(lambda: load_preferences(path), "preference column 'prompt' is missing; columns found: 'xxx")


# --- fuzz -------------------------------------------------------------------------------------------


def _text(rows: list[dict], fmt: str) -> str:
    if fmt in {"csv", "tsv"}:
        return pd.DataFrame(rows).to_csv(index=False, sep="\t" if fmt == "tsv" else ",")
    if fmt == "json":
        return json.dumps(rows, indent=None if len(rows) % 2 else 1)  # on one line, or a line per key
    return "".join(json.dumps(r) + "\n" for r in rows)


DEEP = "[" * 50_000 + "]" * 50_000


def _mutate(rng: random.Random, rows: list[dict], fmt: str) -> bytes:
    """A valid table, changed once or twice at the row level and/or at the byte level."""
    rows = [dict(r) for r in rows]
    for _ in range(rng.randint(0, 2)):
        row, column = rng.choice(rows), rng.choice(list(rows[0]))
        kind = rng.choice(
            ["null", "empty", "huge", "number", "drop", "deep", "duplicate", "quote", "unicode", "object"]
        )
        if kind == "null":
            row[column] = None
        elif kind == "empty":
            row[column] = rng.choice(["", " ", "\t", "nan", "None"])
        elif kind == "huge":
            row[column] = rng.choice(["x", "1", "\u00e9", ",", '"']) * rng.choice([10_000, 200_000])
        elif kind == "number":
            row[column] = rng.choice([0, -1, 1.5, float("nan"), float("inf"), 10**30, True])
        elif kind == "drop":
            for r in rows if rng.random() < 0.5 else [row]:
                r.pop(column, None)
        elif kind == "deep":
            row[column] = "__DEEP__"
        elif kind == "duplicate":
            rows.append(dict(row))
        elif kind == "quote":
            row[column] = rng.choice(['"', '""', 'a"b', "a,b", "a\tb", "a\nb", "a\rb", "\r\n", "\\"])
        elif kind == "unicode":
            row[column] = rng.choice(["\u2028", "\ud7ff", "\U0001f600", "\ufeff", "\x1b[31m", "\u0000"])
        else:
            row[column] = rng.choice([{"a": 1}, [1, 2], []])
    try:
        text = _text(rows, fmt)
    except (TypeError, ValueError):
        text = _text([{k: str(v) for k, v in r.items()} for r in rows], fmt)
    data = bytearray(text.replace('"__DEEP__"', DEEP).replace("__DEEP__", DEEP).encode("utf-8", "surrogatepass"))
    for _ in range(rng.randint(0, 2)):
        kind = rng.choice(["flip", "truncate", "nul", "insert", "delete", "bom", "crlf"])
        at = rng.randrange(len(data) + 1)
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == "truncate":
            del data[at:]
        elif kind == "nul":
            data[at:at] = b"\x00"
        elif kind == "insert":
            data[at:at] = rng.choice([b"{", b"}", b"[", b",", b'"', b"\n", b"\t", b"\xff\xfe", b"\xc3", b"null"])
        elif kind == "delete":
            del data[at : at + rng.randint(1, 20)]
        elif kind == "bom":
            data[0:0] = b"\xef\xbb\xbf"
        else:
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
    return bytes(data)


def test_fuzzed_files_load_or_raise_a_one_line_data_error(files, tmp_path):
    docs, qs, corpus = files
    cases = [
        (DOCS, lambda p: load_corpus(p, qs)),
        (QUESTIONS, lambda p: load_corpus(docs, p)),
        (PAIRS, load_preferences),
        (SCORES, lambda p: ReplayScorer.from_file(p, corpus)),
    ]
    rng = random.Random(20240611)
    start, outcomes = time.perf_counter(), {"loaded": 0, "refused": 0}
    for case in range(240):
        rows, load = cases[case % len(cases)]
        fmt = rng.choice(["csv", "jsonl", "csv", "jsonl", "tsv", "json"])
        path = tmp_path / f"fuzz_{case}.{fmt}"
        path.write_bytes(_mutate(rng, rows, fmt))
        try:
            load(path)
            outcomes["loaded"] += 1
        except DataError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 300, (case, message)
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {case} ({path.name}): {type(exc).__name__}: {str(exc)[:300]}")
        path.unlink()
    assert outcomes["loaded"] > 20 and outcomes["refused"] > 60, outcomes
    assert time.perf_counter() - start < 20


# --- embedding progress ---------------------------------------------------------------------------


def test_the_embedder_can_show_its_progress(monkeypatch, capsys):
    """A stand-in model (the bar, not MiniLM, is under test): ``progress=True`` counts texts on
    stderr; the default prints nothing."""
    from types import SimpleNamespace

    from dataprice.models import embedder

    def encode(texts, **_):
        return np.ones((len(texts), 384), np.float32) / np.sqrt(384)

    stand_in = SimpleNamespace(encode=encode, max_seq_length=0)
    monkeypatch.setattr(embedder, "load_sentence_model", lambda *a, **k: stand_in)
    out = embedder.Embedder(batch_size=2, cache=False, progress=True).encode(["a", "bb", "ccc"])
    assert out.shape == (3, 384) and stand_in.max_seq_length == 256
    assert "embedding" in (err := capsys.readouterr().err) and "/3 " in err, err  # n of 3 texts
    embedder.Embedder(batch_size=2, cache=False).encode(["a", "bb", "ccc"])
    assert capsys.readouterr().err == ""
