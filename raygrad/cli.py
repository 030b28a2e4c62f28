"""The `raygrad` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from raygrad.config import ConfigError, RunConfig, load_config
from raygrad.data import DatasetError, load_split
from raygrad.llm.client import BudgetExhausted


def _config(path: str | None) -> RunConfig:
    return load_config(path) if path else RunConfig()


def cmd_eval(args: argparse.Namespace) -> int:
    from raygrad.evaluate import evaluate
    from raygrad.llm.endpoints import role_clients
    from raygrad.workflows import build_workflow

    config = _config(args.config)
    examples = load_split(config.data, args.split)  # bad data fails here, before any call
    workflow, eval_fn = build_workflow(config.workflow)
    with role_clients(config, roles=("task",)) as clients:
        client = clients["task"]
        report = asyncio.run(evaluate(workflow, examples, client, eval_fn, split=args.split))
    output = Path(args.output) if args.output else config.run_dir / f"eval_{args.split}.parquet"
    report.write_parquet(output)
    usage = client.usage
    cost = f"${usage.cost:.4f}" if usage.cost else "unknown (no price for this model)"
    print(f"workflow {config.workflow.name} on split {args.split!r} ({len(examples)} samples, model {client.config.model})")
    print(f"  score          {report.score:.3f} over {report.completed} completed samples")
    print(f"  failed samples {report.failed}" + (" (calls that never succeeded; not scored)" if report.failed else ""))
    print(f"  calls          {usage.calls} made, {usage.cached_calls} from the journal, {usage.retries} retries "
          f"({usage.rate_limited} rate-limited)")
    print(f"  tokens         {usage.prompt_tokens} prompt + {usage.completion_tokens} completion")
    print(f"  cost           {cost}")
    print(f"  wall time      {report.wall_time_s:.1f} s")
    print(f"  per-sample results: {output}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from raygrad.distributed.runtime import distributed_run
    from raygrad.storage import RESULT_FILES, Storage
    from raygrad.trainer import save_atomically
    from raygrad.workflows import build_workflow

    config = _config(args.config)
    train, val, test = (load_split(config.data, split) for split in ("train", "val", "test"))
    workflow, _ = build_workflow(config.workflow)
    start_values = workflow.state()
    run_dir = config.run_dir
    storage = Storage(config.storage) if config.storage else None
    if storage and not (run_dir / "checkpoint.json").exists() and storage.get("checkpoint.json", run_dir / "checkpoint.json"):
        print(f"resuming from the checkpoint in {config.storage}")
    started = time.monotonic()
    with distributed_run(config, args.address, eval_name=config.workflow.eval or "workflow's") as run:
        before = run.evaluate(start_values, test)
        state = run.fit(train, val)
        after = None if state.stopped else run.evaluate(state.values, test)
        usage, stats = run.usage(), run.stats()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_atomically(run_dir / "prompts.json", json.dumps(state.values, indent=2, ensure_ascii=False))
    if storage:
        for name in RESULT_FILES:
            storage.put(run_dir / name)
    accepted = sum(c.accepted for c in state.candidates)
    print(f"optimized {config.workflow.name} for {state.step} steps ({accepted} of {len(state.candidates)} "
          f"candidates accepted) in {time.monotonic() - started:.0f} s" + (f"; stopped: {state.stopped}" if state.stopped else ""))
    print(f"  validation  {state.initial_val:.3f} -> {state.best_val:.3f}   ({len(val)} samples)")
    if after is None:
        print(f"  test        {before.score:.3f} -> (not evaluated: the run stopped at its budget)")
    else:
        print(f"  test        {before.score:.3f} -> {after.score:.3f}   ({len(test)} samples, "
              f"{before.failed + after.failed} failed)")
    for name, value in state.values.items():
        changed = "changed" if value != start_values.get(name) else "unchanged"
        print(f"  {name} ({changed}): {value!r}")
    for role, u in usage.items():
        print(f"  {role:<10} {u.calls:>5} calls  {u.cached_calls:>5} from journal  "
              f"{u.prompt_tokens + u.completion_tokens:>8} tokens")
    print(f"  ray: {len(stats['workers'])} workers, {len(stats['replaced'])} replaced after dying, "
          f"{stats['cancelled_shards']} validation shards cancelled early; peak memory "
          f"{stats['peak_rss_mb']['optimizer']:.0f} MB optimizer, "
          f"{max(v for k, v in stats['peak_rss_mb'].items() if k != 'optimizer'):.0f} MB largest worker")
    print(f"  prompts: {run_dir / 'prompts.json'}   checkpoint: {run_dir / 'checkpoint.json'}"
          + (f"   copied to {config.storage}" if storage else ""))
    if state.stopped:
        print(f"  to continue from step {state.step}: raise the budget in the trainer section of the config and run "
              f"`raygrad optimize {args.config or ''}` again (calls already made are replayed from the journal)")
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
    ev.add_argument("config", nargs="?", help="run config (YAML); default: ObjectCount on the local model")
    ev.add_argument("--split", default="val")
    ev.add_argument("--output", help="Parquet file for per-sample results")
    ev.set_defaults(run=cmd_eval)
    opt = commands.add_parser("optimize", help="optimize a workflow's prompts (resumes from its checkpoint)")
    opt.add_argument("config", nargs="?", help="run config (YAML); default: ObjectCount on the local model")
    opt.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance)")
    opt.set_defaults(run=cmd_optimize)
    serve = commands.add_parser("serve-local", help="serve the embedded local model in the foreground")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(run=cmd_serve_local)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, DatasetError) as err:
        print(f"raygrad: error: {err}", file=sys.stderr)
        return 2
    except BudgetExhausted as err:
        print(f"raygrad: stopped: {err}; raise the budget and run the same command again to continue",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
