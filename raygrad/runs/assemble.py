"""What a run config builds before any call: its workflow and metric, and its data splits."""
from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from raygrad.core.workflow import LLMCall, Workflow
from raygrad.data import Dataset, Example, PackedRows, RowSource, iter_examples, parse_range
from raygrad.errors import ConfigError, DatasetError, last_line
from raygrad.llm.models import ROLES
from raygrad.optim.metrics import EVALS, Metric, as_metric
from raygrad.runs.config import DataConfig, WorkflowConfig
from raygrad.runs.imports import import_object
from raygrad.tasks import GENERATORS, WORKFLOWS
from raygrad.tasks.retrieval import BM25, load_corpus


def build_workflow(config: WorkflowConfig, data: DataConfig | None = None) -> tuple[Workflow, Metric]:
    """The workflow and metric a config names; ConfigError naming the field if they cannot be had. With
    `data`, its input fields are checked against the workflow's `forward` too."""
    if config.class_ is not None:
        cls = import_object(config.class_, "workflow.class", config.search_path)
        if not (isinstance(cls, type) and issubclass(cls, Workflow)):
            raise ConfigError(f"workflow.class: {config.class_} is not a raygrad.Workflow subclass")
        try:
            workflow = cls(**config.args)
        except Exception as err:  # the user's constructor may raise anything
            raise ConfigError(f"workflow.args: {config.class_}(**args) raised {last_line(err)}") from None
    else:
        assert config.name is not None
        cls = WORKFLOWS[config.name]
        options = {"retriever": BM25(load_corpus(config.corpus))} if config.corpus else {}
        workflow = cls(instruction=config.instruction, output_format=config.output_format, **options)
    if data is not None:
        check_inputs(workflow, data)
    return workflow, build_metric(config.eval or getattr(cls, "default_eval", "exact"), config.search_path)


def check_inputs(workflow: Workflow, data: DataConfig) -> None:
    """The data's input fields fit the workflow's `forward`: one positional input (`input_field`), or each
    of `input_fields` by keyword. A ConfigError before any call, not a TypeError on every sample."""
    try:
        signature = inspect.signature(workflow.forward)
    except (TypeError, ValueError):
        return  # no signature to read (a C callable): the first sample will tell
    params = list(signature.parameters.values())
    if not inspect.iscoroutinefunction(workflow.forward):
        raise ConfigError(f"workflow.class: {type(workflow).__name__}.forward must be `async def forward(...)`")
    required = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    any_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    shown = f"{type(workflow).__name__}.forward{signature}"
    if data.input_fields is not None:
        unknown = [f for f in data.input_fields if f not in named and not any_keyword]
        missing = [name for name in required if name not in data.input_fields]
        if unknown or missing:
            raise ConfigError(f"data.input_fields: {data.input_fields} do not fit {shown}: "
                              + "; ".join([f"it takes no {', '.join(unknown)}"] * bool(unknown)
                                          + [f"nothing gives it {', '.join(missing)}"] * bool(missing)))
    else:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        if not positional or len(required) > 1:
            raise ConfigError(f"data.input_field: {data.input_field!r} is passed as forward's one argument, and "
                              f"{shown} takes {'none' if not positional else ', '.join(required)}; for several "
                              "inputs, list them in data.input_fields")


def check_workflow(workflow: Workflow, trained: list[str] | None = None) -> None:
    """What would only show once calls are paid: nothing to train (trainer.parameters, or no trainable
    Parameter at all), and a `forward` with no `return <value>` (every prediction None, every sample 0)."""
    trainable = [name for name, p in workflow.parameters().items()
                 if p.trainable and (trained is None or name in trained)]
    if not trainable:
        raise ConfigError(f"workflow.class: {type(workflow).__name__} has no trainable Parameter"
                          + (f" among trainer.parameters {trained}" if trained is not None else "")
                          + ": nothing to optimize (a Parameter(..., trainable=False) is kept as it is)")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(workflow.forward)))
    except (OSError, TypeError, SyntaxError):
        return  # no source to read (built at run time, a C callable): the samples will tell
    function = tree.body[0]
    own = [node for node in ast.walk(function) if isinstance(node, ast.Return) and node.value is not None
           and not (isinstance(node.value, ast.Constant) and node.value.value is None)]
    if not own and isinstance(function, ast.AsyncFunctionDef):
        raise ConfigError(f"workflow.class: {type(workflow).__name__}.forward returns no value, so every prediction "
                          "would be None; end it with `return <prediction>`")


def first_unpicklable(value: Any, dumps: Callable[[Any], bytes], path: str = "workflow", depth: int = 0) -> str | None:
    """The deepest attribute of `value` that `dumps` cannot serialize, as `workflow.a.b (Type: why)`; None
    if all of it can. Ray sends the workflow to its actors: what cannot travel is named before Ray starts."""
    try:
        dumps(value)
        return None
    except Exception as err:  # pickling raises TypeError, PicklingError, AttributeError...
        why = f"{path} ({type(value).__name__}: {' '.join(str(err).split())[:160]})"
    if depth < 8:
        children = (vars(value).items() if hasattr(value, "__dict__") and not isinstance(value, type)
                    else value.items() if isinstance(value, dict)
                    else enumerate(value) if isinstance(value, (list, tuple, set, frozenset)) else ())
        for key, child in list(children):
            found = first_unpicklable(child, dumps, f"{path}.{key}" if not isinstance(key, int) else f"{path}[{key}]",
                                      depth + 1)
            if found is not None:
                return found
    return why


def build_metric(spec: str, search: Iterable[str] = ()) -> Metric:
    """A built-in metric by name, or a user's function by import path."""
    if spec in EVALS:
        return as_metric(spec)
    function = import_object(spec, "workflow.eval", search)
    if not callable(function):
        raise ConfigError(f"workflow.eval: {spec} is not a function")
    return Metric(function)  # named as the Python API names it (the function's name): the backward engine reads it


def check_models(workflow: Workflow, models: Mapping[str, object]) -> None:
    """Every model an LLMCall names is configured, and every configured model is a role or named by an
    LLMCall (a misspelt role is not silently unused); ConfigError before any call otherwise."""
    named = set()
    for path, component in workflow.named_components():
        if isinstance(component, LLMCall) and component.model is not None:
            named.add(component.model)
            if component.model not in models:
                raise ConfigError(f"models.{component.model}: the workflow's LLMCall {path!r} uses model "
                                  f"{component.model!r}; add it to the config's models (same fields as models.task)")
    for name in sorted(set(models) - named - set(ROLES)):
        raise ConfigError(f"models.{name}: neither a role ({', '.join(ROLES)}) nor a model an LLMCall of the "
                          "workflow names")


def load_split(config: DataConfig, split: str, skipped: list[str] | None = None) -> Dataset:
    """The examples of one named split; an unknown or empty split is an error.

    A file's split is read into PackedRows; with `data.shards`, a RowSource (the file's path and the
    split's row range) instead. A generator's is a list.
    With `data.skip_bad_rows`, bad rows are left out and listed in `skipped` (if given).
    """
    if split not in config.splits:
        raise DatasetError(f"no split {split!r} in data.splits (have: {', '.join(config.splits)})")
    if config.shards and config.path is not None:
        try:
            source = RowSource.open(config.path, config.inputs, config.target_field, config.splits[split],
                                    config.skip_bad_rows)
        except ValueError as err:
            raise DatasetError(f"data.splits.{split}: {err}") from None
        _check_overlap(config, split, source.total)
        return source
    if config.path is None:
        generator = config.generator
        assert generator is not None
        rows = GENERATORS[generator.name](generator.size, generator.seed)
        examples = [Example(id=str(i), **row) for i, row in enumerate(rows)]
        source = f"generator {generator.name} (seed {generator.seed})"
        return examples[_split_rows(config, split, len(examples), source)]
    # A file's rows are held packed as they are read: never all of them as objects at once.
    bad: list[str] = []
    packed = PackedRows.pack(iter_examples(config.path, config.inputs, config.target_field, config.format,
                                           bad if config.skip_bad_rows else None))
    if skipped is not None:
        skipped.extend(b for b in bad if b not in skipped)
    rows = _split_rows(config, split, len(packed) + len(bad), config.path)  # a split keeps the file's row numbers
    chosen = packed.between_ids(rows.start, rows.stop) if bad else packed[rows]
    return chosen if len(chosen) == len(packed) else chosen.compacted()


def _split_rows(config: DataConfig, split: str, size: int, source: str) -> slice:
    try:
        rows = parse_range(config.splits[split], size)
    except ValueError as err:
        raise DatasetError(f"data.splits.{split}: {err} ({source})") from None
    _check_overlap(config, split, size)
    return rows


def _check_overlap(config: DataConfig, split: str, size: int) -> None:
    """Splits of one dataset share no rows, unless the config allows it."""
    if config.allow_overlap:
        return
    mine = parse_range(config.splits[split], size)
    for other, spec in config.splits.items():
        try:
            theirs = parse_range(spec, size)
        except ValueError:
            continue  # reported when that split is loaded
        start, stop = max(mine.start, theirs.start), min(mine.stop, theirs.stop)
        if other != split and start < stop:
            raise DatasetError(f"data.splits.{split} ({config.splits[split]!r}) and data.splits.{other} ({spec!r}) "
                               f"share rows {start}:{stop}; set data.allow_overlap: true if that is meant")
