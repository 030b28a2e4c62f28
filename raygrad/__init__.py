"""raygrad: optimize the prompts of LLM workflows with textual gradients (LLM-AutoDiff), on Ray.

    raygrad.optimize(workflow, train, val, metric=..., models=..., runtime="local" or "ray")
    raygrad.evaluate(workflow, examples, metric=..., model=...)
    wf = raygrad.load(run_dir); wf(**inputs) or await wf.acall(**inputs)

Layers, lowest first (each imports only those before it): errors, llm, data, core, optim, tasks,
runs, distributed, and the doors (api.py, cli.py); testing sits beside them for tests and benchmarks.
"""
from raygrad.api import OptimizeResult, evaluate, load, optimize
from raygrad.core.workflow import (
    Function,
    Image,
    LLMCall,
    OutputInvalid,
    Parameter,
    Tool,
    ToolError,
    Trace,
    Workflow,
    run_forward,
)
from raygrad.data import Example, load_examples
from raygrad.errors import ConfigError, DatasetError
from raygrad.llm.client import Completion, InvalidReply, LLMCallFailed, LLMClient, Usage
from raygrad.llm.journal import Journal
from raygrad.llm.models import ModelConfig
from raygrad.optim.evaluate import EvalReport, SampleResult
from raygrad.optim.metrics import EVALS, Metric
from raygrad.optim.settings import TrainerConfig
from raygrad.runs.assemble import load_split
from raygrad.runs.config import DataConfig, RunConfig, WorkflowConfig, load_config
from raygrad.runs.progress import ProgressEvent
from raygrad.runs.serving import ServedWorkflow
from raygrad.tasks import MultiHopQA, ObjectCount, QuestionClassification, ReActAgent, SingleCall
from raygrad.tasks.object_count import generate_object_counting

__all__ = [
    "EVALS",
    "Completion",
    "ConfigError",
    "DataConfig",
    "DatasetError",
    "EvalReport",
    "Example",
    "Function",
    "Image",
    "InvalidReply",
    "Journal",
    "LLMCall",
    "LLMCallFailed",
    "LLMClient",
    "Metric",
    "ModelConfig",
    "MultiHopQA",
    "ObjectCount",
    "OptimizeResult",
    "OutputInvalid",
    "Parameter",
    "ProgressEvent",
    "QuestionClassification",
    "ReActAgent",
    "RunConfig",
    "SampleResult",
    "ServedWorkflow",
    "SingleCall",
    "Tool",
    "ToolError",
    "Trace",
    "TrainerConfig",
    "Usage",
    "Workflow",
    "WorkflowConfig",
    "evaluate",
    "generate_object_counting",
    "load",
    "load_config",
    "load_examples",
    "load_split",
    "optimize",
    "run_forward",
]
