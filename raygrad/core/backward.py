"""Backward: textual gradients for error samples, and their bounded aggregation per parameter.

A correct sample costs nothing: no backward-engine call is made for it, not even at the loss (the
textual loss is written from the eval's score, without an LLM). For an error sample, the trace is
walked from the loss in reverse topological order; the calls of one depth run concurrently.
An LLM node gives each of its trainable parameters its own gradient (its peers are shown, not
judged) and each predecessor LLM output its feedback; a function node passes feedback through.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, Field

from raygrad.core import prompts
from raygrad.core.messages import as_text, transcript
from raygrad.core.workflow import ChatClient, Node, Parameter, Trace, gather_all
from raygrad.llm.client import InvalidReply, LLMCallFailed


class Gradient(BaseModel):
    parameter: str
    sample_id: str
    score: float
    feedback: str


class FeedbackReply(BaseModel):
    feedback: str = Field(min_length=1)


def textual_loss(prediction: str, target: Any, score: float, eval_name: str, feedback: str | None = None,
                 raised: str | None = None) -> str:
    """The loss as text: score, ground truth and prediction, and the metric's own feedback if it gave one;
    for a sample whose workflow raised, the exception in place of a prediction."""
    if raised:
        return prompts.RAISED_LOSS.format(error=raised, target=target)
    text = prompts.TEXTUAL_LOSS.format(score=score, eval_name=eval_name, target=target, prediction=prediction)
    return text + (prompts.LOSS_FEEDBACK.format(feedback=feedback) if feedback else "")


def _depths(trace: Trace) -> dict[int, int]:
    """Distance of each node from the loss, following edges backwards (nodes no path links to the loss
    are left out: nothing downstream of them was scored)."""
    children: dict[int, list[int]] = defaultdict(list)
    for node in trace.nodes:
        for parent in node.parents:
            children[parent].append(node.id)
    assert trace.loss is not None, "record_loss() closes a trace before its backward pass"
    depth: dict[int, int] = {trace.loss.id: 0}
    for node in reversed(trace.nodes[:trace.loss.id]):  # children are recorded after parents
        below = [depth[c] for c in children[node.id] if c in depth]
        if below:
            depth[node.id] = 1 + max(below)
    return depth


async def _ask(engine: ChatClient, user: str, unparsed: list[str], failed: list[str]) -> str | None:
    try:
        reply = await engine.complete_structured(
            [{"role": "system", "content": prompts.BACKWARD_SYSTEM}, {"role": "user", "content": user}],
            FeedbackReply)
    except InvalidReply as err:
        unparsed.append(f"{err}; the reply: {err.text[:200]!r}")  # counted (one shown) in the step's record
        return None  # no gradient from this call; the step goes on with the others
    except LLMCallFailed as err:
        failed.append(str(err))  # counted and shown too: a backward engine that never answers is no quiet zero
        return None
    return reply.feedback.strip()


async def backward(trace: Trace, sample_id: str, score: float, loss_text: str, parameters: dict[str, Parameter],
                   engine: ChatClient, unparsed: list[str] | None = None, failed: list[str] | None = None
                   ) -> list[Gradient]:
    """Gradients of one error sample for every trainable parameter it touched; replies that did not
    parse are appended to `unparsed`, calls that failed to `failed`."""
    unparsed = [] if unparsed is None else unparsed
    failed = [] if failed is None else failed
    feedback: dict[int, list[str]] = defaultdict(list)
    assert trace.loss is not None, "record_loss() closes a trace before its backward pass"
    for parent in trace.loss.parents:
        feedback[parent].append(loss_text)
    gradients: list[Gradient] = []
    depth = _depths(trace)
    for level in sorted(set(depth.values()) - {0}):
        nodes = [n for n in trace.nodes if depth.get(n.id) == level and feedback[n.id]]
        results = await gather_all(*(_node_backward(n, trace, feedback[n.id], parameters, engine, unparsed, failed)
                                     for n in nodes))
        for node, (param_grads, upstream) in zip(nodes, results):
            gradients += [Gradient(parameter=name, sample_id=sample_id, score=score, feedback=text)
                          for name, text in param_grads]
            for parent, text in upstream:
                feedback[parent].append(text)
    return gradients


async def _node_backward(node: Node, trace: Trace, downstream: list[str], parameters: dict[str, Parameter],
                         engine: ChatClient, unparsed: list[str], failed: list[str]
                         ) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    received = "\n---\n".join(downstream)
    if node.kind != "llm":  # functions pass feedback through to their inputs unchanged
        return [], [(parent, received) for parent in node.parents]
    assert node.messages is not None
    system, user = transcript(node.messages)
    output = as_text(node.output) if node.error is None else f"{as_text(node.output)}\n(this call raised {node.error})"
    # Demos are trained from correct samples, not from feedback: they get no gradient call.
    trainable = [parameters[name] for name in node.parameters
                 if name in parameters and parameters[name].trainable and parameters[name].role != "demos"]
    used = [parameters[n] for n in node.parameters if n in parameters]

    def peers(p: Parameter) -> str:
        return prompts.peers_block([(q, node.values[q.name or ""]) for q in used if q is not p])

    param_prompts = [(p.name, prompts.BACKWARD_PARAMETER.format(
        system=system, input=user, output=output, peers=peers(p), attributes=prompts.attributes(p),
        name=p.name, value=node.values[p.name or ""], feedback=received)) for p in trainable]
    llm_parents = [trace.nodes[i] for i in _llm_ancestors(node, trace)]
    parent_prompts = [(parent.id, prompts.BACKWARD_PREDECESSOR.format(
        system=system, input=user, output=output, name=f"{parent.name}#{parent.call_index}",
        value=as_text(parent.output), feedback=received)) for parent in llm_parents]
    replies = await gather_all(*(_ask(engine, text, unparsed, failed) for _, text in param_prompts + parent_prompts))
    param_replies, parent_replies = replies[:len(param_prompts)], replies[len(param_prompts):]
    return ([(name, r) for (name, _), r in zip(param_prompts, param_replies) if r],
            [(pid, r) for (pid, _), r in zip(parent_prompts, parent_replies) if r])


def _llm_ancestors(node: Node, trace: Trace) -> list[int]:
    """The nearest LLM nodes feeding this one, seen through function nodes."""
    found, stack, seen = [], list(node.parents), set()
    while stack:
        current = trace.nodes[stack.pop()]
        if current.id in seen:
            continue
        seen.add(current.id)
        if current.kind == "llm":
            found.append(current.id)
        else:
            stack.extend(current.parents)
    return sorted(found)


def aggregate(gradients: list[Gradient], max_samples: int = 8, max_chars: int = 600) -> dict[str, str]:
    """Per parameter: feedback grouped by sample, worst sample first, bounded in samples and characters.

    However many error samples a run sees, the text handed to the optimizer stays within
    max_samples * (max_chars + a header) characters per parameter.
    """
    by_parameter: dict[str, dict[str, list[Gradient]]] = defaultdict(lambda: defaultdict(list))
    for gradient in gradients:
        by_parameter[gradient.parameter][gradient.sample_id].append(gradient)
    aggregated = {}
    for name, samples in by_parameter.items():
        worst_first = sorted(samples.items(), key=lambda item: (min(g.score for g in item[1]), item[0]))
        blocks = []
        for sample_id, grads in worst_first[:max_samples]:
            text = " | ".join(g.feedback for g in grads)
            text = text if len(text) <= max_chars else text[:max_chars] + "..."
            blocks.append(f"[sample {sample_id}, score {min(g.score for g in grads):.2f}] {text}")
        if len(worst_first) > max_samples:
            blocks.append(f"(and {len(worst_first) - max_samples} more error samples with similar feedback)")
        aggregated[name] = "\n".join(blocks)
    return aggregated
