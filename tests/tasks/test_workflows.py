"""Built-in workflows; multi-hop QA trains through its retriever (a functional node) and its loop."""
from __future__ import annotations

from raygrad.core.workflow import run_forward
from raygrad.data import Example
from raygrad.optim.execution import LocalExecutor
from raygrad.optim.metrics import exact_match, f1
from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.tasks import MultiHopQA, QuestionClassification, ReActAgent
from raygrad.tasks.multihop import multihop_corpus, multihop_questions
from raygrad.tasks.react_agent import parse_action
from raygrad.tasks.trec import parse_label, trec_questions
from raygrad.testing import RESPONDERS, ScriptedLLM

QUESTIONS = {q["input"]: q for q in multihop_questions()}
PASSAGES = {p.id: p for p in multihop_corpus()}


multihop_reader = RESPONDERS["multihop_trainer"]  # queries name the bridge once retrieved


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


async def test_training_reaches_the_query_through_the_retriever_and_improves_the_answers():
    clients = {role: ScriptedLLM(multihop_reader) for role in ("task", "backward", "optimizer")}
    workflow = MultiHopQA(output_format="Reply.")
    state = await Trainer(workflow, f1, clients, TrainerConfig(steps=1, batch_size=4, proposals=4),
                          eval_name="f1").fit(examples(slice(0, 20), needs_second_hop=True)[:4], examples(slice(20, 40)))
    errors = state.steps[0].errors
    assert errors >= 2 and state.best_val > state.initial_val
    # Per error sample: the answer call's two peers, its two query predecessors (seen through the
    # retriever), then query#1's parameter and its predecessor query#0, then query#0's parameter.
    assert len(clients["backward"].calls) == 7 * errors
    query_prompts = [m[1]["content"] for m in clients["backward"].calls if 'name="query_instruction"' in m[1]["content"]]
    assert len(query_prompts) == 2 * errors  # once per hop
    # The answer call's diagnosis reached the queries through the retriever.
    assert all("The prompt should tell the model" in p.split("<DOWNSTREAM_FEEDBACK>")[1] for p in query_prompts)


def trec_examples(rows: slice) -> list[Example]:
    return [Example(id=str(i), input=r["input"], target=r["target"]) for i, r in list(enumerate(trec_questions()))[rows]]


async def test_question_classification_reads_the_label_through_a_parser_node():
    output, trace = await run_forward(QuestionClassification(), "Why is the sky blue?",
                                      ScriptedLLM(lambda messages, body: "It asks for an explanation, so: desc."))
    assert output == "DESC"
    assert [(n.name, n.kind, n.parents) for n in trace.nodes] == [("answer", "llm", []), ("parse_label", "function", [0])]
    assert parse_label("NUM or LOC? I say LOC") == "LOC" and parse_label("no idea") == "no idea"


async def test_question_classification_trains_through_its_parser_with_backward_for_errors_only():
    clients = {role: ScriptedLLM("trec_trainer") for role in ("task", "backward", "optimizer")}
    workflow = QuestionClassification(instruction="Classify the question.", output_format="Reply.")
    state = await Trainer(workflow, exact_match, clients, TrainerConfig(steps=2, batch_size=4, proposals=3),
                          eval_name="exact").fit(trec_examples(slice(0, 24)), trec_examples(slice(24, 42)))
    assert state.best_val > state.initial_val and any(s.accepted for s in state.steps)
    errors = sum(s.errors for s in state.steps)
    assert errors > 0 and len(clients["backward"].calls) == 2 * errors  # instruction and output format; none for demos


async def test_react_agent_runs_a_tool_loop_and_each_turn_is_a_node_fed_by_the_last_observation():
    question = QUESTIONS[examples(slice(0, 40), needs_second_hop=True)[0].input]
    agent = ReActAgent(instruction="Think step by step. Count each fact, ignore the rest; only the total answer:")
    output, trace = await run_forward(agent, question["input"], ScriptedLLM("react_agent"))
    assert [(n.name, n.call_index) for n in trace.nodes] == [
        ("step", 0), ("parse_action", 0), ("search", 0), ("step", 1), ("parse_action", 1), ("search", 1),
        ("step", 2), ("parse_action", 2)]
    ids = {(n.name, n.call_index): n.id for n in trace.nodes}
    assert ids[("search", 0)] in trace.nodes[ids[("step", 1)]].parents
    assert {ids[("search", 0)], ids[("search", 1)]} <= set(trace.nodes[ids[("step", 2)]].parents)
    assert PASSAGES[question["supporting"][1]].text in str(trace.nodes[ids[("search", 1)]].output)
    assert output in (question["target"], "not sure")
    assert parse_action("Action: search[a] ... finish[b]") == ("finish", "b") and parse_action("hm")[0] == ""


async def test_react_agent_trains_every_turn_of_its_loop():
    clients = {role: ScriptedLLM("react_agent_trainer") for role in ("task", "backward", "optimizer")}
    agent = ReActAgent(instruction="Answer the question.", output_format="Use search[query] or finish[answer].")
    chosen = examples(slice(0, 40), needs_second_hop=True)
    state = await Trainer(agent, f1, clients, TrainerConfig(steps=2, batch_size=4, proposals=3),
                          eval_name="f1").fit(chosen[:8], chosen[8:20])
    assert state.best_val > state.initial_val
    # Each error sample took three turns; the step's instruction gets a gradient at every turn.
    instruction_prompts = [m for m in clients["backward"].calls if "the variable instruction as JSON" in m[1]["content"]]
    assert len(instruction_prompts) == 3 * sum(s.errors for s in state.steps) > 0


async def test_an_agent_that_never_finishes_answers_nothing_and_its_loss_still_reaches_every_turn():
    clients = {role: ScriptedLLM(lambda m, b: "search[more]") for role in ("task", "optimizer")}
    clients["backward"] = ScriptedLLM("react_agent_trainer")
    agent = ReActAgent(max_turns=2)
    output, trace = await run_forward(agent, "Where was the founder of Velmora Instruments born?", clients["task"])
    assert output == "" and [(n.name, n.call_index) for n in trace.nodes][-2:] == [("search", 1), ("out_of_turns", 0)]
    assert trace.nodes[-1].parents == [ids for ids, n in enumerate(trace.nodes) if (n.name, n.call_index) == ("step", 1)]
    example = examples(slice(0, 1))[0]
    outcome = await LocalExecutor(agent, f1, clients).train_batch(agent.state(), [example], [0])
    assert outcome.results[0].score == 0.0
    # Both turns' step calls get feedback for both trainable parameters; the first turn also as the
    # second turn's predecessor (through the search tool).
    assert len(clients["backward"].calls) == 2 + 2 + 1
