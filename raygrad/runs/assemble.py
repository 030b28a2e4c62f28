"""What a run config builds before any call: its workflow and metric, and its data splits."""
from __future__ import annotations

from raygrad.core.graph import Workflow
from raygrad.data import Dataset, Example, RowSource, load_examples, parse_range
from raygrad.errors import DatasetError
from raygrad.optim.metrics import EVALS, EvalFn
from raygrad.runs.config import DataConfig, WorkflowConfig
from raygrad.tasks import GENERATORS, WORKFLOWS
from raygrad.tasks.retrieval import BM25, load_corpus


def build_workflow(config: WorkflowConfig) -> tuple[Workflow, EvalFn]:
    """The workflow and eval function a config names."""
    cls = WORKFLOWS[config.name]
    options = {"retriever": BM25(load_corpus(config.corpus))} if config.corpus else {}
    workflow = cls(instruction=config.instruction, output_format=config.output_format, **options)
    return workflow, EVALS[config.eval or cls.default_eval]  # type: ignore[attr-defined]


def load_split(config: DataConfig, split: str, skipped: list[str] | None = None) -> Dataset:
    """The examples of one named split; an unknown or empty split is an error.

    With `data.shards`, a RowSource (the file's path and the split's row range) instead of a list.
    With `data.skip_bad_rows`, bad rows are left out and listed in `skipped` (if given).
    """
    if split not in config.splits:
        raise DatasetError(f"no split {split!r} in data.splits (have: {', '.join(config.splits)})")
    if config.shards and config.path is not None:
        try:
            source = RowSource.open(config.path, config.input_field, config.target_field, config.splits[split])
        except ValueError as err:
            raise DatasetError(f"data.splits.{split}: {err}") from None
        if len(source) == 0:
            raise DatasetError(f"data.splits.{split} = {config.splits[split]!r} selects no rows of {config.path}")
        return source
    if config.path is not None:
        bad: list[str] | None = [] if config.skip_bad_rows else None
        examples = load_examples(config.path, config.input_field, config.target_field, config.format, bad)
        if bad and skipped is not None:
            skipped.extend(b for b in bad if b not in skipped)
        source = config.path
    else:
        generator = config.generator
        assert generator is not None
        rows = GENERATORS[generator.name](generator.size, generator.seed)
        examples = [Example(id=str(i), **row) for i, row in enumerate(rows)]
        source = f"generator {generator.name} (seed {generator.seed})"
    try:
        chosen = examples[parse_range(config.splits[split], len(examples))]
    except ValueError as err:
        raise DatasetError(f"data.splits.{split}: {err}") from None
    if not chosen:
        raise DatasetError(f"data.splits.{split} = {config.splits[split]!r} selects no rows of {source} "
                           f"({len(examples)} rows)")
    return chosen
