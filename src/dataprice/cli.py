"""Command line: ``dataprice run | compare | report | diff | validate | init | live``.

Exit codes: 0 success, 2 bad input (scenario, data, output path), 1 unexpected failure
(one line; ``--traceback`` shows the whole traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dataprice import __version__
from dataprice.errors import DatapriceError, OutputError

#: When the command started (this module is the first dataprice imports): the time a command
#: prints is the whole command's, imports, checks and report writing included.
_STARTED = time.monotonic()


def _took(run_seconds: float) -> str:
    """``12.3 s in all; the run 10.1 s``: the whole command so far, and the run itself."""
    return f"{time.monotonic() - _STARTED:.1f} s in all; the run {run_seconds:.1f} s"


def _print_error(exc: BaseException) -> None:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"error: {line}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    """Check every file given, reporting each; a bad file never stops the others."""
    from dataprice.scenario import load_scenario

    status = 0
    for path in args.scenarios:
        try:
            scenario = load_scenario(path)
        except DatapriceError as exc:
            _print_error(exc)
            status = max(status, 2)
            continue
        except Exception as exc:  # noqa: BLE001 - one file's bug must not hide the rest
            if args.traceback:
                raise
            print(f"error: {path}: internal error ({type(exc).__name__}); please report it", file=sys.stderr)
            status = max(status, 1)
            continue
        print(f"{path}: ok ({scenario.name}: {scenario.sellers.count} sellers, buyer {scenario.buyer.task})")
    return status


def _checkpoint_dir(out: Path) -> Path:
    """Where an unfinished run keeps its finished replicates: beside the report directory.
    Running the same command again after an interruption continues from there."""
    return out.parent / f".{out.name}.checkpoints"


def _load_with_overrides(args: argparse.Namespace, replicates: int | None):
    """The scenario of ``args.scenario`` with the command line's seed, replicates and engine."""
    from dataprice.scenario import load_scenario

    overrides: dict = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if replicates is not None:
        overrides["replicates"] = replicates
    engine: dict = {}
    if args.workers is not None:
        engine["workers"] = args.workers
        if args.engine is None:
            engine["kind"] = "loky" if args.workers > 1 else "serial"
    if args.engine is not None:
        engine["kind"] = args.engine
    if args.address is not None:
        engine["address"] = args.address
    if args.coalition_cache is not None:
        engine["coalition_cache"] = True
        if args.coalition_cache != "default":
            engine["coalition_cache_path"] = args.coalition_cache
    if engine:
        overrides["engine"] = engine
    scenario = load_scenario(args.scenario, overrides)
    if args.small:
        from dataprice.scenario import small_scenario

        scenario = small_scenario(scenario)
    return scenario


def _cmd_run(args: argparse.Namespace) -> int:
    from dataprice.experiment import ReplicateCheckpoints, run_scenario
    from dataprice.report import write_report
    from dataprice.safedir import check_output_dir

    scenario = _load_with_overrides(args, args.replicates)
    out = check_output_dir(scenario.resolved_output_dir(args.out), "report directory")  # before any work
    if args.statements == "pdf":
        from dataprice.report.writer import require_browser

        require_browser()  # before any work, too
    checkpoints = _checkpoint_dir(out)
    result = run_scenario(scenario, progress=not (args.quiet or args.no_progress), checkpoint_dir=checkpoints)
    write_report(result, out, statements=args.statements)
    ReplicateCheckpoints(checkpoints, scenario).clear()  # the report is complete: nothing to resume
    if not args.quiet:
        print(result.mechanisms_table().to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"report written to {out / 'report.html'} ({_took(result.seconds)})")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from dataprice.experiment import ReplicateCheckpoints, run_scenario
    from dataprice.experiment.compare import comparison_table
    from dataprice.report import write_comparison
    from dataprice.safedir import check_output_dir

    scenario = _load_with_overrides(args, args.seeds)
    out = Path(args.out) if args.out else scenario.resolved_output_dir().with_name(scenario.name + "_compare")
    out = check_output_dir(out, "report directory")  # before any work
    checkpoints = _checkpoint_dir(out)
    result = run_scenario(scenario, progress=not (args.quiet or args.no_progress), checkpoint_dir=checkpoints)
    write_comparison(result, out)
    ReplicateCheckpoints(checkpoints, scenario).clear()
    if not args.quiet:
        table = comparison_table(result)
        cols = ["rule", "max_misreport_gain_mean", "misreport_mean", "efficiency_mean", "buyer_cost_mean", "payment_cv"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print(f"comparison written to {out / 'report.html'} ({_took(result.seconds)})")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dataprice.report.writer import rebuild_report
    from dataprice.safedir import check_output_dir

    if args.out is not None:
        check_output_dir(args.out, "report directory")  # before reading the saved run
    out = rebuild_report(args.directory, args.out, statements=args.statements)
    print(f"report rebuilt at {out / 'report.html'}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from dataprice.report.diff import diff_reports

    diff = diff_reports(args.before, args.after)
    text = diff.to_markdown(str(args.before), str(args.after))
    if args.out is not None:
        csv = args.out.with_suffix(".csv")
        _check_replaceable_file(args.out, "# Report diff:")
        _check_replaceable_file(csv, "seller,rule,")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        diff.payments.to_csv(csv, index=False)
        print(f"diff written to {args.out} and {args.out.with_suffix('.csv')}")
    else:
        print(text)
    return 0


def _check_replaceable_file(path: Path, first_line: str) -> None:
    """``path`` may be written: it does not exist, or it is a file dataprice wrote (its first
    line starts with ``first_line``); anything else is refused, never overwritten."""
    from dataprice.inputs import excerpt, path_problem

    problem = path_problem(path)
    if problem:
        raise OutputError(f"--out: {problem} (got {excerpt(str(path))})")
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file():
        raise OutputError(f"--out {excerpt(str(path), 200)} exists and is not a file dataprice wrote; choose another name")
    with path.open("rb") as fh:
        head = fh.read(len(first_line.encode()))
    if head != first_line.encode():
        raise OutputError(f"--out {excerpt(str(path), 200)} exists and was not written by dataprice diff; choose another name")


def _cmd_init(args: argparse.Namespace) -> int:
    """Write an annotated scenario template; an existing path is never overwritten."""
    from dataprice.inputs import excerpt, path_problem
    from dataprice.scenario.templates import TEMPLATES

    path: Path = args.file
    problem = path_problem(path)
    if problem:
        raise OutputError(f"init: {problem} (got {excerpt(str(path))})")
    if path.exists() or path.is_symlink():
        raise OutputError(f"init: {excerpt(str(path), 200)} exists; dataprice init never overwrites a file, choose "
                          "another name")
    if path.suffix not in (".yaml", ".yml"):
        raise OutputError(f"init: a scenario file ends in .yaml or .yml (got {excerpt(str(path), 200)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as fh:  # "x": fails rather than replace a file made meanwhile
        fh.write(TEMPLATES[args.buyer])
    print(f"wrote {path} ({args.buyer} buyer). Check it: dataprice validate {path}; try it: "
          f"dataprice run {path} --small")
    return 0


def _cmd_live(args: argparse.Namespace) -> int:
    """Serve the live view until interrupted."""
    from dataprice.live import LiveMarket, check_address, serve

    check_address(args.host, args.port)  # before building the market
    scenario = _load_with_overrides(args, None)
    live = LiveMarket(scenario)
    server = serve(live, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"dataprice live: http://{'[' + host + ']' if ':' in host else host}:{port}/ ({scenario.name}; "
          "Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


#: Each subcommand's description and example, shown by ``dataprice COMMAND --help``.
HELP = {
    "run": ("Run a scenario: build the buyer's game, value the sellers with every method, settle the "
            "market under every payment rule, audit truthfulness, and write the compensation report "
            "(report.html, report.md, one statement per seller, tables as CSV and Parquet).",
            "dataprice run scenarios/quickstart.yaml --small\n  dataprice run my.yaml --out reports/mine --seed 3"),
    "compare": ("Run every payment rule of a scenario over several seeds and compare them: truthfulness, "
                "efficiency, buyer cost, seller surplus and payment stability.",
                "dataprice compare scenarios/learning_sellers.yaml --seeds 4"),
    "report": ("Rebuild a report directory from the run saved in it (no data files or models needed), "
               "optionally with each statement printed to PDF.",
               "dataprice report reports/quickstart --out reports/quickstart_again"),
    "diff": ("Which seller's payment changed between two report directories, and what changed with it "
             "(selection, cost, report, contribution, values).",
             "dataprice diff reports/before reports/after --out diff.md"),
    "validate": ("Check scenario files without running them: every problem is one line naming the field, "
                 "and the data files they name are read and checked.",
                 "dataprice validate scenarios/*.yaml"),
    "live": ("Watch a scenario's repeated market round by round in a browser: reports against costs, payments "
             "and welfare per rule, with controls for the rule shown, the bidding strategy and Hedge's learning "
             "rate. Serves on a loopback address only.",
             "dataprice live scenarios/learning_sellers.yaml --port 8050"),
    "init": ("Write an annotated scenario template for a buyer (it runs as written, on data dataprice "
             "builds; comments say where your own files and models go).",
             "dataprice init my_market.yaml --buyer dpo\n  dataprice run my_market.yaml --small"),
}


def _subcommand(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    import textwrap

    description, example = HELP[name]
    return sub.add_parser(name, help=help_text, description=textwrap.fill(description, 88),
                          epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dataprice",
        description="Simulate data markets and compute incentive-aware compensation for data contributors.",
    )
    parser.add_argument("--version", action="version", version=f"dataprice {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an unexpected error")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: its buyers, valuation methods and payment rules become "
                             "available to scenarios (repeatable; installed packages' entry points load by themselves)")
    sub = parser.add_subparsers(dest="command", required=True)

    def runner_command(name: str, help_text: str, out_default: str):
        command = _subcommand(sub, name, help_text)
        command.add_argument("scenario", type=Path, help="scenario YAML file")
        command.add_argument("--out", type=Path, default=None, help=f"report directory (default: {out_default})")
        command.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
        command.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary table")
        command.add_argument("--no-progress", action="store_true",
                             help="no progress (the summary table is still printed); progress is a live bar on "
                                  "a terminal and plain lines in a log")
        command.add_argument("--small", action="store_true",
                             help="a quick run at small size (fewer replicates, rounds and evaluations; tiny LM)")
        command.add_argument("--engine", choices=["serial", "loky", "dask", "ray"], default=None,
                             help="where replicates run (default: the scenario's engine)")
        command.add_argument("--workers", type=int, default=None,
                             help="worker processes (alone: loky if more than 1, else serial)")
        command.add_argument("--address", default=None, help="Dask scheduler or Ray cluster address")
        command.add_argument("--coalition-cache", nargs="?", const="default", default=None, metavar="FILE",
                             help="reuse coalition values across runs (default file: $DATAPRICE_CACHE/coalitions.sqlite)")
        return command

    run = runner_command("run", "run a scenario and write its compensation report", "the scenario's output_dir")
    run.add_argument("--replicates", type=int, default=None, help="override the number of replicates")
    statements_help = ("'pdf': also print each seller's statement to statements/<seller>.pdf, one A4 page each "
                       "(needs Debian's chromium and chromium-driver); every report has them in report.html")
    run.add_argument("--statements", choices=["html", "pdf"], default="html", help=statements_help)
    run.set_defaults(func=_cmd_run)

    compare = runner_command(
        "compare", "run every payment rule over several seeds and compare them", "<output_dir>_compare"
    )
    compare.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the scenario's replicates)")
    compare.set_defaults(func=_cmd_compare)

    report = _subcommand(sub, "report", "rebuild a report directory from the results saved in it")
    report.add_argument("directory", type=Path, help="a report directory written by dataprice run or compare")
    report.add_argument("--out", type=Path, default=None, help="write the rebuilt report here (default: in place)")
    report.add_argument("--statements", choices=["html", "pdf"], default="html", help=statements_help)
    report.set_defaults(func=_cmd_report)

    diff = _subcommand(sub, "diff", "which seller's payment changed between two reports, and why")
    diff.add_argument("before", type=Path, help="report directory")
    diff.add_argument("after", type=Path, help="report directory")
    diff.add_argument("--out", type=Path, default=None, help="write Markdown here (and a CSV beside it)")
    diff.set_defaults(func=_cmd_diff)

    validate = _subcommand(sub, "validate", "check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+", help="scenario YAML files")
    validate.set_defaults(func=_cmd_validate)

    live = _subcommand(sub, "live", "watch the repeated market round by round in a browser (localhost)")
    live.add_argument("scenario", type=Path, help="scenario YAML file")
    live.add_argument("--port", type=int, default=8050, help="port (0: any free one; default 8050)")
    live.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1, ::1 or localhost)")
    live.add_argument("--small", action="store_true", help="the scenario at small size (tiny LM, fewer evaluations)")
    live.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    live.set_defaults(func=_cmd_live, workers=None, engine=None, address=None, coalition_cache=None)

    from dataprice.scenario.templates import TEMPLATES

    init = _subcommand(sub, "init", "write an annotated scenario template to start from")
    init.add_argument("file", type=Path, nargs="?", default=Path("scenario.yaml"),
                      help="where to write it (default: scenario.yaml; never overwritten)")
    init.add_argument("--buyer", choices=sorted(TEMPLATES), default="classifier", help="the kind of buyer")
    init.set_defaults(func=_cmd_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.plugin:
            from dataprice.plugins import load_plugins

            load_plugins(args.plugin)
        return args.func(args)
    except DatapriceError as exc:
        _print_error(exc)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no report was written (finished replicates are kept to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback on request
        if args.traceback:
            raise
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"error: internal error ({type(exc).__name__}: {message}); rerun with --traceback and "
              "please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
