"""Built-in workflows; multi-hop QA trains through its retriever (a functional node) and its loop."""
from __future__ import annotations

from raygrad import prompts
from raygrad.data import Example
from raygrad.engine import run_forward
from raygrad.evals import f1
from raygrad.retrieval import multihop_corpus, multihop_questions
from raygrad.testing import ScriptedLLM
from raygrad.testing.responders import object_count_trainer
from raygrad.trainer import Trainer, TrainerConfig
from raygrad.workflows import MultiHopQA

QUESTIONS = {q["input"]: q for q in multihop_questions()}
PASSAGES = {p.id: p for p in multihop_corpus()}


def multihop_reader(messages, body):
    """Queries name the bridge once it was retrieved; answers are terse only when told 'only'."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if system in (prompts.BACKWARD_SYSTEM, prompts.OPTIMIZER_SYSTEM):
        return object_count_trainer(messages, body)
    question = QUESTIONS[user.split("question:\n", 1)[1].split("\n\npassages:", 1)[0]]
    bridge, answer_passage = (PASSAGES[i] for i in question["supporting"])
    if system.startswith("Write a search query"):
        return bridge.text if bridge.text in user else question["input"]
    answer = question["target"] if answer_passage.text in user else "unknown"
    return answer if "only" in system.lower() else f"From what I read, I believe it is {answer}."


def examples(rows: slice, needs_second_hop: bool = False) -> list[Example]:
    """Questions in a range; optionally only those whose answer passage the first hop misses."""
    index = MultiHopQA().retriever
    chosen = []
    for i, q in list(enumerate(multihop_questions()))[rows]:
        first_hop = [p.id for p in index.top(q["input"], 2)]
        if not needs_second_hop or q["supporting"][1] not in first_hop:
            chosen.append(Example(id=str(i), input=q["input"], target=q["target"]))
    return chosen


async def test_two_hops_retrieve_the_answer_passage_and_trace_the_loop():
    question = QUESTIONS[examples(slice(0, 40), needs_second_hop=True)[0].input]
    output, trace = await run_forward(MultiHopQA(), question["input"], ScriptedLLM(multihop_reader))
    assert output == question["target"]
    assert [(n.name, n.call_index) for n in trace.nodes] == [
        ("query", 0), ("retrieve", 0), ("query", 1), ("retrieve", 1), ("answer", 0)]
    passages = trace.nodes[-1].inputs["passages"]
    assert any(PASSAGES[question["supporting"][1]].text in p for p in passages)
    assert not any(PASSAGES[question["supporting"][1]].text in p for p in trace.nodes[1].output)  # hop 2 found it


async def test_training_reaches_the_query_through_the_retriever_and_fixes_the_format():
    clients = {role: ScriptedLLM(multihop_reader) for role in ("task", "backward", "optimizer")}
    workflow = MultiHopQA(output_format="Reply.")
    state = await Trainer(workflow, f1, clients, TrainerConfig(steps=1, batch_size=4, proposals=4),
                          eval_name="f1").fit(examples(slice(0, 20), needs_second_hop=True)[:4], examples(slice(20, 40)))
    assert state.initial_val < 0.5 and state.best_val == 1.0 and state.steps[0].errors == 4
    # Per error sample: the answer call's two peers, its two query predecessors (seen through the
    # retriever), then query#1's parameter and its predecessor query#0, then query#0's parameter.
    assert len(clients["backward"].calls) == 7 * 4
    query_prompts = [m[1]["content"] for m in clients["backward"].calls if 'name="query_instruction">' in m[1]["content"]]
    assert len(query_prompts) == 2 * 4  # once per hop
    assert all("count each item" in p.split("<DOWNSTREAM_FEEDBACK>")[1] for p in query_prompts)
    assert "only" in workflow.answer_format.value.lower() or "only" in workflow.answer_instruction.value.lower()
