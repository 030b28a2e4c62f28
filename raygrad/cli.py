"""The `raygrad` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path

from raygrad.errors import ConfigError, DatasetError
from raygrad.llm.client import BudgetExhausted
from raygrad.llm.journal import JournalError
from raygrad.optim.evaluate import raised_text
from raygrad.optim.execution import SamplesFailed
from raygrad.runs.config import RunConfig, check_keys, load_config
from raygrad.runs.report import ReportError
from raygrad.runs.results import RunResult
from raygrad.runs.rundir import CONFIG, CheckpointError
from raygrad.runs.storage import StorageError
from raygrad.runs.summary import models_line, result_summary


def _config(path: str | None) -> RunConfig:
    """The run config at `path` (or the default run), its API key variables checked before anything starts."""
    config = load_config(path) if path else RunConfig()
    check_keys(config, path)
    return config


def cmd_eval(args: argparse.Namespace) -> int:
    from raygrad.data import shard
    from raygrad.llm.client import Usage
    from raygrad.llm.endpoints import role_clients
    from raygrad.optim.evaluate import evaluate
    from raygrad.runs.assemble import build_workflow, check_models, load_split

    run_dir = Path(args.config) if args.config and (Path(args.config) / CONFIG).is_file() else None
    config = _config(str(run_dir / CONFIG) if run_dir else args.config)
    skipped: list[str] = []
    split = load_split(config.data, args.split, skipped)  # bad data fails here, before any call
    examples = shard(split, 0, len(split))  # a sharded file's split (data.shards) is read here, all of it
    workflow, metric = build_workflow(config.workflow, config.data)
    scored = _values_to_score(workflow, args, run_dir, config)
    models = {name: model for name, model in config.role_models().items() if name not in ("backward", "optimizer")}
    check_models(workflow, models)
    with role_clients(models, config.journal_path) as clients:
        report = asyncio.run(evaluate(workflow, examples, clients, metric, split=args.split))
        spent = {name: client.usage for name, client in clients.items()}
    output = Path(args.output) if args.output else (run_dir or config.run_dir) / f"eval_{args.split}.parquet"
    report.write_parquet(output)
    usage = Usage()
    for part in spent.values():
        usage = usage.add(part)
    cost = f"${usage.cost:.4f}" if usage.cost else "unknown (no price for these models)"
    used = ", ".join(f"{name} {models[name].model or 'embedded'}" for name in spent)
    print(f"workflow {config.workflow.label} on split {args.split!r} ({len(examples)} samples, models: {used})")
    print(f"  values         {scored}")
    print(f"  score          {'none' if report.score is None else f'{report.score:.3f}'} over {report.completed} "
          "completed samples")
    if skipped:
        print(f"  skipped rows   {len(skipped)} (data.skip_bad_rows), the first: {skipped[0]}")
    first_error = next((s.error for s in report.samples if s.error), None)
    print(f"  failed samples {report.failed}" + (f" (not scored; the first: {first_error})" if report.failed else ""))
    if report.raised:
        print(f"  raised         {sum(r.count for r in report.raised.values())} samples, scored 0: "
              f"{raised_text(report.raised)}")
    for name, part in spent.items():
        print(f"  calls {name:<9}{part.calls} made, {part.cached_calls} from the journal, {part.retries} retries "
              f"({part.rate_limited} rate-limited)")
    print(f"  tokens         {usage.prompt_tokens} prompt + {usage.completion_tokens} completion")
    print(f"  cost           {cost}")
    print(f"  wall time      {report.wall_time_s:.1f} s")
    print(f"  per-sample results: {output}")
    if report.completed == 0:
        print(f"raygrad: every sample failed, so there is no score; the first failure: {first_error}", file=sys.stderr)
        return 5
    return 0


def _values_to_score(workflow, args: argparse.Namespace, run_dir: Path | None, config: RunConfig) -> str:
    """Load the values `raygrad eval` scores into the workflow; say which they are."""
    from raygrad.runs.rundir import CHECKPOINT, PROMPTS
    from raygrad.runs.serving import best_values, read_values

    if args.values:
        workflow.load_state(read_values(Path(args.values)))
        return f"from {args.values}"
    if run_dir is not None and not args.start:
        workflow.load_state(best_values(run_dir))
        step = json.loads((run_dir / CHECKPOINT).read_text())["step"] if (run_dir / CHECKPOINT).exists() else "?"
        state = "finished" if (run_dir / PROMPTS).exists() else "still going"
        return f"the best of the run in {run_dir} ({state}, after step {step})"
    ran = run_dir or config.run_dir
    hint = f"; the run's best: raygrad eval {ran}" if (ran / PROMPTS).exists() or (ran / CHECKPOINT).exists() else ""
    return f"the start values, as the config writes them{hint}"


def cmd_optimize(args: argparse.Namespace) -> int:
    config = _config(args.config)
    config.if_changed = "restart" if args.restart else "resume" if args.resume_changed else "refuse"
    result = _optimize_one(config, args, config.run_dir)
    if result.candidates == 0 and (result.unparsed_gradients or result.unparsed_proposals):
        example = (result.unparsed_example or "")[:160]
        print(f"raygrad: no candidate could be formed: {result.unparsed_gradients} backward-engine and "
              f"{result.unparsed_proposals} optimizer replies did not parse (e.g. {example}); give those roles a "
              "model that follows JSON instructions, or set structured_output on their models entries", file=sys.stderr)
        return 6
    if result.stopped:
        print(f"  to continue from step {result.steps}: raise the budget in the trainer section of the config and run "
              f"`raygrad optimize {args.config or ''}` again (calls already made are replayed from the journal)")
    return 0


def _optimize_one(config: RunConfig, args: argparse.Namespace, run_dir: Path) -> RunResult:
    """One run with a progress display while it works; its summary (and report, with --report) at the end."""
    from raygrad.api import optimize_config
    from raygrad.runs.progress import ProgressPrinter

    print(models_line(config))
    on_progress = ProgressPrinter(config.name, sys.stdout, args.interval)
    try:
        result = optimize_config(config, "local" if args.local else "ray", args.address, on_progress)
    finally:
        on_progress.close()
    print("\n".join(result_summary(result, run_dir)))
    if args.report:
        from raygrad.runs.report import write_report

        print(f"  report: {write_report(run_dir)}")
    else:
        print(f"  report: raygrad report {run_dir}")
    return result


def cmd_sweep(args: argparse.Namespace) -> int:
    from raygrad.runs.sweep_plan import load_sweep

    sweep, planned = load_sweep(args.sweep)  # every run validated before anything starts
    return _run_sweep(sweep, planned, args)


def cmd_resume(args: argparse.Namespace) -> int:
    from raygrad.runs.sweep_plan import load_sweep_dir

    directory = Path(args.directory)
    if (directory / CONFIG).exists():  # one run's directory
        config = _config(str(directory / CONFIG))
        config.output_dir, config.name = str(directory.parent), directory.name
        return 3 if _optimize_one(config, args, directory).stopped else 0
    sweep, planned = load_sweep_dir(directory)
    return _run_sweep(sweep, planned, args)


def _run_sweep(sweep, planned, args: argparse.Namespace) -> int:
    from raygrad.distributed.sweep import run_sweep
    from raygrad.runs.sweep_plan import write_sweep_file

    write_sweep_file(sweep, planned)
    print(f"sweep {sweep.name}: {len(planned)} runs in {sweep.directory}, {sweep.concurrency} at once")
    outcomes = run_sweep(sweep, planned, sys.stdout, args.address, interval_s=args.interval)
    print(f"sweep {sweep.name}:")
    for outcome in outcomes:
        result = outcome.result
        test = "-" if result is None or result.test_before is None else f"{result.test_before:.3f}"
        scores = (f"val {result.initial_val:.3f} -> {result.best_val:.3f}, test {test} -> "
                  + ("-" if result.test_after is None else f"{result.test_after:.3f}")) if result else ""
        skipped = f"  ({result.skipped_rows} bad rows skipped)" if result and result.skipped_rows else ""
        print(f"  {outcome.name:<32} {outcome.status:<9} {scores}{skipped}"
              + (f"  {outcome.error}" if outcome.error else ""))
    print(f"  results: {sweep.directory}   report: raygrad report {sweep.directory}")
    if any(o.status != "finished" and o.status != "skipped" for o in outcomes):
        print(f"  to continue: raygrad resume {sweep.directory}")
    statuses = {o.status for o in outcomes}
    return 1 if "failed" in statuses else 3 if "stopped" in statuses else 0


def cmd_report(args: argparse.Namespace) -> int:
    from raygrad.runs.report import write_report

    path = write_report(args.directory, args.output)
    print(f"report: {path}   (plots as PNG beside it)")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from raygrad.tasks.public_data import fetch_hotpotqa, fetch_trec

    directory = Path(args.directory)
    if args.dataset == "trec":
        sources = {split: Path(path) for split, path in zip(("train", "test"), args.source or [])}
        written = fetch_trec(directory, sources)
    else:
        written = fetch_hotpotqa(directory, Path(args.source[0]) if args.source else None, args.limit)
    for path in written:
        print(f"wrote {path} ({sum(1 for _ in path.open(encoding='utf-8'))} rows)")
    return 0


def cmd_serve_local(args: argparse.Namespace) -> int:
    from raygrad.llm.local import LOCAL_MODEL_NAME, LocalModelServer

    with LocalModelServer(port=args.port) as server:
        print(f"SmolLM2-135M-Instruct serving an OpenAI-compatible API at {server.api_base}")
        print(f"  litellm model: openai/{LOCAL_MODEL_NAME}   api_base: {server.api_base}   (Ctrl-C stops it)")
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raygrad", description="Optimize the prompts of LLM workflows "
                                     "with textual gradients, on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("eval", help="run a workflow over a data split and score it")
    ev.add_argument("config", nargs="?", help="run config (YAML), or a run directory (its best values are scored); "
                                               "default: ObjectCount on the local model")
    ev.add_argument("--split", default="val")
    ev.add_argument("--values", help="a prompts JSON file (parameter name -> text) to score instead")
    ev.add_argument("--start", action="store_true", help="with a run directory: score its start values")
    ev.add_argument("--output", help="Parquet file for per-sample results")
    ev.set_defaults(run=cmd_eval)
    opt = commands.add_parser("optimize", help="optimize a workflow's prompts (resumes from its checkpoint)")
    opt.add_argument("config", nargs="?", help="run config (YAML); default: ObjectCount on the local model")
    opt.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance)")
    opt.add_argument("--local", action="store_true",
                     help="run in this process without Ray (the Ray-free executor: a breakpoint in forward() stops)")
    changed = opt.add_mutually_exclusive_group()
    changed.add_argument("--restart", action="store_true",
                         help="the run directory holds a run whose setup differs from the config's: start it over")
    changed.add_argument("--resume-changed", action="store_true",
                         help="the run directory holds a run whose setup differs from the config's: resume it anyway")
    opt.set_defaults(run=cmd_optimize)
    sweep = commands.add_parser("sweep", help="run many optimizations on one cluster; again: resume the unfinished")
    sweep.add_argument("sweep", help="sweep file (YAML): base, runs, grid, limits")
    resume = commands.add_parser("resume", help="resume a sweep's unfinished runs, or one run, from its directory")
    resume.add_argument("directory", help="a sweep directory or a run directory")
    resume.add_argument("--local", action="store_true", help="a run directory: resume in this process, without Ray")
    for command in (sweep, resume):
        command.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance)")
    for command in (opt, sweep, resume):
        command.add_argument("--interval", type=float, default=30.0,
                             help="seconds between status lines when the output is not a terminal")
    for command in (opt, resume):
        command.add_argument("--report", action="store_true",
                             help="write the run's HTML report (raygrad report) when it ends, and print its path")
    sweep.set_defaults(run=cmd_sweep)
    resume.set_defaults(run=cmd_resume)
    report = commands.add_parser("report", help="an HTML page (and PNG plots) of a sweep's or a run's results")
    report.add_argument("directory", help="a sweep directory or a run directory")
    report.add_argument("--output", help="folder for report.html and the PNGs (default: DIR/report)")
    report.set_defaults(run=cmd_report)
    fetch = commands.add_parser("fetch", help="download a public dataset of the paper's tasks and convert it")
    fetch.add_argument("dataset", choices=["trec", "hotpotqa"])
    fetch.add_argument("directory", help="folder for the converted JSONL files")
    fetch.add_argument("--source", nargs="+", metavar="FILE",
                       help="convert copies downloaded by hand instead (trec: TRAIN TEST label files; "
                            "hotpotqa: the JSON file)")
    fetch.add_argument("--limit", type=int, help="hotpotqa: keep the first N questions (and their paragraphs)")
    fetch.set_defaults(run=cmd_fetch)
    serve = commands.add_parser("serve-local", help="serve the embedded local model in the foreground")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(run=cmd_serve_local)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (`ray job stop`, Kubernetes, systemd): the command stops as Ctrl-C stops it, with its own code."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    terminated: list[int] = []  # noted apart: raised inside a Ray call, Terminated arrives as a KeyboardInterrupt

    def terminate(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise Terminated()

    before = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:
        return args.run(args)
    except (ConfigError, DatasetError, ReportError) as err:
        err = getattr(err, "cause", None) or err  # raised in a Ray actor (a shard's bad row): its own message
        print(f"raygrad: error: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, StorageError, JournalError) as err:
        err = getattr(err, "cause", None) or err  # raised in a Ray actor: its own message, not Ray's traceback
        print(f"raygrad: stopped: {err}. Free space or fix the path, then run the same command again to resume "
              "from the last checkpoint.", file=sys.stderr)
        return 4
    except BudgetExhausted as err:
        print(f"raygrad: stopped: {err}; raise the budget and run the same command again to continue",
              file=sys.stderr)
        return 3
    except SamplesFailed as err:
        err = getattr(err, "cause", None) or err
        print(f"raygrad: stopped: {err}. Nothing was kept from those samples; run the same command again once the "
              "provider answers (completed calls are replayed from the journal).", file=sys.stderr)
        return 5
    except KeyboardInterrupt as err:
        command = " ".join(argv or sys.argv[1:])
        by_sigterm = isinstance(err, Terminated) or bool(terminated)
        how = "terminated (SIGTERM)" if by_sigterm else "interrupted"
        print(f"raygrad: {how}; completed calls are in the journal: run `raygrad {command}` again to resume",
              file=sys.stderr)
        return 143 if by_sigterm else 130
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
