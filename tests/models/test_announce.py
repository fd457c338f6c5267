"""Long model loads announce themselves: a plain line on stderr when a load starts and one
with the seconds it took, on a terminal or in a log (no escape codes); nothing when progress
is off, and nothing when the model is already loaded."""

from __future__ import annotations

import io
import re

import pytest

from dataprice.errors import DataError
from dataprice.models.loading import first_line, loaded_once, quiet_loading, weights_size
from dataprice.progress import announce

END = re.compile(r"^\.\.\. loaded in \d+\.\d s$")


def test_announce_prints_a_start_line_and_an_end_line_with_seconds(capsys):
    with announce("loading SmolLM2-135M (GGUF, 98 MB) from /models/x.gguf", enabled=True):
        pass
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == "loading SmolLM2-135M (GGUF, 98 MB) from /models/x.gguf ..."
    assert END.match(lines[1]), lines
    assert len(lines) == 2
    assert "\x1b" not in captured.err and "\r" not in captured.err


def test_announce_is_quiet_when_not_enabled_and_says_no_end_when_the_block_fails(capsys):
    with announce("loading something", enabled=False):
        pass
    assert capsys.readouterr().err == ""
    with pytest.raises(RuntimeError), announce("loading something", enabled=True):
        raise RuntimeError("boom")
    assert capsys.readouterr().err == "loading something ...\n"  # the error says the rest


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_announce_on_a_terminal_is_plain_text_too():
    out = _Terminal()
    with announce("loading x", enabled=True, done="ready", file=out):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "loading x ..." and re.match(r"^\.\.\. ready in \d+\.\d s$", lines[1]), lines
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_loaded_once_keys_by_arguments_but_not_by_progress():
    loads = []

    @loaded_once(maxsize=2)
    def load(name: str, *, progress: bool = False) -> object:
        loads.append((name, progress))
        return object()

    first = load("a", progress=True)
    assert load("a") is first and load("a", progress=True) is first  # loaded once, announced once
    load("b")
    load("c")  # evicts "a", the least recently used
    assert load("a") is not first
    assert loads == [("a", True), ("b", False), ("c", False), ("a", False)]


def test_quiet_loading_restores_the_loggers_after_the_last_of_overlapping_loads():
    """Two loads in threads whose quiet blocks overlap (A enters, B enters, A leaves, B
    leaves): the loggers stay quiet until B leaves, then have their own levels back."""
    import logging
    import threading

    import transformers.utils.logging  # noqa: F401 - sets its logger's level on import

    st, hf = logging.getLogger("sentence_transformers"), logging.getLogger("transformers")
    before = st.level, hf.level
    st.setLevel(logging.INFO)
    try:
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def load_a():
            with quiet_loading():
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def load_b():
            a_in.wait(5)
            with quiet_loading():
                b_in.set()
                a_out.wait(5)
                seen["inside after A left"] = (st.level, hf.level)

        threads = [threading.Thread(target=load_a), threading.Thread(target=load_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen["inside after A left"] == (logging.CRITICAL, logging.CRITICAL)
        assert st.level == logging.INFO and hf.level == before[1]
    finally:
        st.setLevel(before[0])


def test_first_line_quotes_one_line_and_names_a_shape_mismatch():
    assert first_line(ValueError("bad header\nmore detail")) == "bad header"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("x" * 500)) == "x" * 200
    mismatch = RuntimeError("You set `ignore_mismatched_sizes` to `False`, thus raising an error. See the report!")
    assert first_line(mismatch) == "the tensor shapes in its weights do not match its config.json"


def test_weights_size_reads_weight_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2_500_000)
    (tmp_path / "config.json").write_text("{}")
    assert weights_size(tmp_path) == "2 MB"
    assert weights_size(tmp_path / "config.json") == "0.0 MB"
    assert weights_size(tmp_path / "missing") == "size unknown"


def test_a_real_minilm_load_with_progress_is_announced_once(capsys):
    pytest.importorskip("torch")
    from dataprice.models import embedder

    embedder.load_sentence_model.cache_clear()  # a real load, whatever ran before
    out = embedder.Embedder(cache=False, progress=True).encode(["a sentence", "another one"])
    assert out.shape == (2, 384)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("loading all-MiniLM-L6-v2 (safetensors, 91 MB) from ")
    assert lines[0].endswith(" ...") and str(embedder.minilm_folder()) in lines[0]
    assert END.match(lines[1]), lines
    assert any(line.startswith("embedding: 2/2") for line in lines[2:]), lines  # the bar, as plain lines
    assert "\x1b" not in err and "\r" not in err
    embedder.Embedder(cache=False, progress=True).encode(["a third"])  # loaded already: no announcement
    assert "loading" not in capsys.readouterr().err
    embedder.Embedder(cache=False).encode(["a fourth"])
    assert capsys.readouterr().err == ""


def test_an_lm_folder_load_is_announced_and_a_bad_folder_is_not(tmp_path, capsys):
    from dataprice.models.lm import load_lm_folder, tiny_causal_lm

    model, tokenizer = tiny_causal_lm()
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    capsys.readouterr()
    load_lm_folder(str(folder), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("loading the causal LM tiny (safetensors, ") and lines[0].endswith(f"from {folder} ...")
    assert END.match(lines[1]) and len(lines) == 2, lines
    load_lm_folder(str(folder), progress=True)  # cached: silent
    load_lm_folder(str(folder))
    assert capsys.readouterr().err == ""
    with pytest.raises(DataError, match="model folder not found"):
        load_lm_folder(str(tmp_path / "missing"), progress=True)
    assert capsys.readouterr().err == ""  # checked before anything is announced
