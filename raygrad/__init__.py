"""raygrad: optimize the prompts of LLM workflows with textual gradients (LLM-AutoDiff), on Ray."""
from raygrad.config import ConfigError, DataConfig, ModelConfig, RunConfig, WorkflowConfig, load_config
from raygrad.data import DatasetError, Example, load_examples, load_split
from raygrad.engine import Function, LLMCall, Parameter, Trace, Workflow, run_forward
from raygrad.evals import EVALS
from raygrad.evaluate import EvalReport, SampleResult, evaluate
from raygrad.llm.client import Completion, InvalidReply, LLMCallFailed, LLMClient, Usage
from raygrad.llm.journal import Journal
from raygrad.objectcount import generate_object_counting
from raygrad.workflows import MultiHopQA, ObjectCount, QuestionClassification, ReActAgent, SingleCall

__all__ = [
    "EVALS", "Completion", "ConfigError", "DataConfig", "DatasetError", "EvalReport", "Example", "Function",
    "InvalidReply", "Journal", "LLMCall", "LLMCallFailed", "LLMClient", "ModelConfig", "MultiHopQA", "ObjectCount",
    "Parameter", "QuestionClassification", "ReActAgent", "RunConfig", "SampleResult", "SingleCall", "Trace", "Usage",
    "Workflow", "WorkflowConfig", "evaluate", "generate_object_counting", "load_config", "load_examples", "load_split", "run_forward",
]
