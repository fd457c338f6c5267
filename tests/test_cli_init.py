"""``dataprice init`` and every subcommand's ``--help``: a description and an example each;
every template validates as written (two run at --small size), and nothing is overwritten."""

from __future__ import annotations

import pytest

from dataprice.cli import HELP, main
from dataprice.scenario.templates import TEMPLATES


@pytest.mark.parametrize("command", sorted(HELP))
def test_every_subcommand_help_has_a_description_and_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    description, example = HELP[command]
    assert " ".join(description.split()[:6]) in " ".join(out.split())
    assert "example:\n  dataprice " + command in out and example.split("\n")[0] in out


@pytest.mark.parametrize("buyer", sorted(TEMPLATES))
def test_every_template_validates_as_written(buyer, tmp_path, capsys):
    path = tmp_path / f"{buyer}.yaml"
    assert main(["init", str(path), "--buyer", buyer]) == 0
    assert f"dataprice validate {path}" in capsys.readouterr().out
    assert main(["validate", str(path)]) == 0
    assert f"buyer {buyer}" in capsys.readouterr().out


@pytest.mark.parametrize("buyer", ["classifier", "federated"])
def test_a_template_runs_at_small_size(buyer, tmp_path):
    path = tmp_path / "scenario.yaml"
    assert main(["init", str(path), "--buyer", buyer]) == 0
    assert main(["run", str(path), "--small", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "report.html").is_file()


def test_init_never_overwrites_and_errors_are_one_line(tmp_path, capsys):
    mine = tmp_path / "mine.yaml"
    mine.write_text("my own scenario\n")
    for args, part in (([str(mine)], "exists; dataprice init never overwrites"),
                       ([str(tmp_path / "notes.txt")], "ends in .yaml or .yml")):
        capsys.readouterr()
        assert main(["init", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert part in err and "\n" not in err
    assert mine.read_text() == "my own scenario\n" and not (tmp_path / "notes.txt").exists()
