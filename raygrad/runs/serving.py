"""An optimized workflow in an application: loaded from its run directory, called like a function.

`ServedWorkflow` owns an event loop in a thread of its own, where its clients live (a client belongs
to one loop: its limiter and connections do), so the same object serves plain sync code
(`wf(question=...)`), an asyncio application (`await wf.acall(question=...)`) and batches
(`wf.batch([...])`) under one set of rate limits. No trace is kept unless asked for, and no call is
journaled: an application wants fresh answers, not the run's replays.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from raygrad.core.workflow import Workflow, run_forward
from raygrad.data import Example
from raygrad.errors import ConfigError
from raygrad.llm.client import LLMClient, Usage
from raygrad.llm.endpoints import resolved_models
from raygrad.llm.limits import EndpointLimiter
from raygrad.llm.models import ROLES, ModelConfig
from raygrad.runs.assemble import build_workflow, check_models
from raygrad.runs.config import load_config
from raygrad.runs.lifecycle import cancel_the_rest
from raygrad.runs.rundir import CHECKPOINT, CONFIG, PROMPTS, read_json


class ServedWorkflow:
    """A workflow with fixed values and its models' clients, ready to call. Close it (or use `with`) to stop
    its thread and, if it started one, the embedded model's server."""

    def __init__(self, workflow: Workflow, models: Mapping[str, ModelConfig]):
        self.workflow = workflow
        self._stack = ExitStack()
        resolved, endpoints = self._stack.enter_context(resolved_models(models))  # keys checked, local model started
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raygrad-served", daemon=True)
        self._thread.start()
        self._stack.callback(self._stop_loop)
        self.clients: dict[str, LLMClient] = self._run(self._make_clients(resolved, endpoints)).result()

    @staticmethod
    async def _make_clients(models: Mapping[str, ModelConfig], endpoints: Mapping[str, str]) -> dict[str, LLMClient]:
        limiters: dict[str, EndpointLimiter] = {}  # one per endpoint: names on one endpoint share its limits
        for name, model in models.items():
            limiters.setdefault(endpoints[name], EndpointLimiter(model.rpm, model.tpm, model.max_in_flight))
        return {name: LLMClient(model, endpoint_id=endpoints[name], limiter=limiters[endpoints[name]], role="task")
                for name, model in models.items()}

    def _run(self, coroutine: Any) -> Future:
        if self._loop.is_closed():
            coroutine.close()  # never to run: closed, so Python does not warn it was never awaited
            raise RuntimeError("this ServedWorkflow is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _forward(self, sample: Example, trace: bool) -> Any:
        output, recorded = await run_forward(self.workflow, sample, self.clients)
        return (output, recorded) if trace else output

    async def acall(self, *args: Any, trace: bool = False, **inputs: Any) -> Any:
        """The workflow's output for one input (positional) or several (keywords); with `trace=True`,
        (output, Trace)."""
        return await asyncio.wrap_future(self._run(self._forward(_sample(args, inputs), trace)))

    def __call__(self, *args: Any, trace: bool = False, **inputs: Any) -> Any:
        """The same from sync code (it waits for the answer)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a ServedWorkflow called from its own loop: await acall(...) instead")
        return self._run(self._forward(_sample(args, inputs), trace)).result()

    def _gather(self, inputs: Iterable[Any], return_exceptions: bool) -> Future:
        samples = [_sample((), row) if isinstance(row, Mapping) else _sample((row,), {}) for row in inputs]

        async def all_of() -> list[Any]:
            return await asyncio.gather(*(self._forward(s, False) for s in samples),
                                        return_exceptions=return_exceptions)
        return self._run(all_of())

    async def abatch(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> list[Any]:
        """Many inputs at once (each a dict of keyword inputs, or the one input): all in flight, as the
        models' limits (rpm, tpm, max_in_flight) allow."""
        return await asyncio.wrap_future(self._gather(inputs, return_exceptions))

    def batch(self, inputs: Iterable[Any], *, return_exceptions: bool = False) -> list[Any]:
        """`abatch` from sync code."""
        return self._gather(inputs, return_exceptions).result()

    def usage(self) -> dict[str, Usage]:
        """Calls, tokens and dollars so far, per model name."""
        return {name: client.usage.model_copy() for name, client in self.clients.items()}

    def _stop_loop(self) -> None:
        asyncio.run_coroutine_threadsafe(cancel_the_rest(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> ServedWorkflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(run_dir: str | Path, *, workflow: Workflow | None = None,
         models: Mapping[str, ModelConfig] | None = None, values: str | Path | None = None) -> ServedWorkflow:
    """The workflow of a run, with the run's best values and its task models (the task model and those its
    LLMCalls name; not the backward engine or the optimizer), ready to call.

    `workflow`: an instance to load the values into (a workflow built by the Python API, whose
    constructor arguments the run directory does not hold); by default it is built from the run's
    config. `models`: entries that replace the run's (another key variable, another endpoint).
    `values`: a prompts file to load instead of the run's best values.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise ConfigError(f"{run_dir}: not a run directory (it has no {CONFIG})")
    config = load_config(run_dir / CONFIG)
    if workflow is None:
        workflow, _ = build_workflow(config.workflow)
    workflow.load_state(best_values(run_dir) if values is None else read_values(Path(values)))
    chosen = {name: model for name, model in config.role_models().items() if name not in ROLES[1:]}
    chosen.update(models or {})
    check_models(workflow, chosen)
    return ServedWorkflow(workflow, chosen)


def best_values(run_dir: Path) -> dict[str, str]:
    """The run's best values: prompts.json once it ended, else the last checkpoint's (a run still going)."""
    if (run_dir / PROMPTS).exists():
        return read_values(run_dir / PROMPTS)
    if (run_dir / CHECKPOINT).exists():
        saved = read_json(run_dir / CHECKPOINT, "the run's values are unreadable until it is resumed from its journal "
                          "(move the file aside, then `raygrad resume` replays every paid call)")
        return dict(saved["values"])
    raise ConfigError(f"{run_dir}: no {PROMPTS} and no {CHECKPOINT}: the run has not finished a step")


def read_values(path: Path) -> dict[str, str]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read the values: {err}") from None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ConfigError(f"{path}: expected a JSON object of parameter name -> text")
    return values


def _sample(args: tuple, inputs: Mapping[str, Any]) -> Example:
    if args and inputs:
        raise TypeError("give the one input positionally, or every input by keyword, not both")
    if len(args) > 1:
        raise TypeError(f"one positional input, or keywords: got {len(args)} positional inputs")
    if args:
        return Example(id="", input=args[0], target=None)
    return Example(id="", inputs=dict(inputs), target=None, keywords=True)
