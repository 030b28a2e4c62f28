"""AdalFlow 1.1.3 set up offline for the benchmarks: the ObjectCount task as an AdalComponent."""
from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace  # adalflow.datasets imports torch: samples are plain namespaces
from typing import Any


def import_adalflow(home: str | None = None) -> Any:
    """`import adalflow` loads tiktoken's cl100k_base, which it would download: litellm ships that file.
    With `home`, AdalFlow's cache and checkpoints (under ~/.adalflow) start empty there."""
    import litellm

    os.environ["TIKTOKEN_CACHE_DIR"] = str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers")
    if home:
        os.environ["HOME"] = home
    import adalflow

    return adalflow


def client(url: str, model: str, max_retries: int | None = None) -> dict:
    """A model config for AdalFlow (its OpenAIClient calls the Responses API). `max_retries` raises the
    OpenAI SDK's own retries (2 by default; they honour retry-after-ms) under AdalFlow's 5 s backoff."""
    from adalflow.components.model_client import OpenAIClient

    model_client = OpenAIClient(base_url=url, api_key="sk-bench")
    if max_retries is not None:
        model_client.sync_client = model_client.sync_client.with_options(max_retries=max_retries)
    return {"model_client": model_client, "model_kwargs": {"model": model, "temperature": 0.0}}


def last_number(text: str) -> str:
    found = re.findall(r"-?\d+", text)
    return found[-1] if found else ""


def exact(y: str, y_gt: str) -> float:
    return float(str(y).strip() == str(y_gt).strip())


def object_count_task(url: str, template: str, parameters: dict[str, str], max_retries: int | None = None,
                      use_cache: bool = True, **component_kwargs: Any) -> Any:
    """One Generator (model "task") whose template fills `parameters` (trainable prompts) and `input_str`.
    `use_cache` is AdalFlow's own cache of replies, kept on disk across runs under ~/.adalflow."""
    adal = import_adalflow()

    class Counter(adal.Component):
        def __init__(self):
            super().__init__()
            self.llm = adal.Generator(
                **client(url, "task", max_retries), template=template, use_cache=use_cache,
                output_processors=adal.func_to_data_component(last_number),
                prompt_kwargs={name: adal.Parameter(data=value, role_desc=name.replace("_", " "), requires_opt=True,
                                                    param_type=adal.ParameterType.PROMPT)
                               for name, value in parameters.items()})

        def call(self, question: str, id: str | None = None):
            return self.llm(prompt_kwargs={"input_str": question}, id=id)

    class Task(adal.AdalComponent):
        def prepare_task(self, sample):
            return self.task.call, {"question": sample.question, "id": sample.id}

        def prepare_eval(self, sample, y_pred):
            return self.eval_fn, {"y": "" if y_pred is None or y_pred.data is None else y_pred.data,
                                  "y_gt": sample.answer}

        def prepare_loss(self, sample, pred):
            y_gt = adal.Parameter(name="y_gt", data=sample.answer, eval_input=sample.answer, requires_opt=False)
            pred.eval_input = pred.full_response.data
            return self.loss_fn, {"kwargs": {"y": pred, "y_gt": y_gt}, "id": sample.id}

    return Task(task=Counter(), eval_fn=exact, **component_kwargs)


def samples(rows: list[dict], offset: int = 0) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=str(offset + i), question=r["input"], answer=r["target"]) for i, r in enumerate(rows)]
