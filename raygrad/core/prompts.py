"""The prompts of the backward engine and the optimizer, kept apart from control flow.

Sections are fenced with tags so that the optimizer's reply can be checked for leaked prompt text.
"""
from __future__ import annotations

TEXTUAL_LOSS = (
    "The workflow's output was scored {score:.2f} (1 is correct) by the {eval_name} eval.\n"
    "Ground truth: {target}\nPrediction: {prediction}"
)
LOSS_FEEDBACK = "\nFeedback from the eval: {feedback}"  # when the metric gives one
RAISED_LOSS = (  # a sample whose workflow raised: scored 0, with the exception as the feedback
    "The workflow raised an exception on this sample, so it gave no prediction (scored 0.00).\n"
    "Exception: {error}\nGround truth: {target}\n"
    "A reply the workflow could not use (malformed, not valid JSON, a missing field or an unknown value) "
    "is the prompt's fault: say what the prompt should ask for so that the reply is well-formed."
)

BACKWARD_SYSTEM = (
    "You are part of an optimization system that improves the prompts of an LLM workflow. "
    "You write feedback (a textual gradient) for ONE variable: say concisely how it should change "
    "so that the workflow's output gets closer to the ground truth. Do not rewrite the variable; "
    "give specific, actionable criticism. Other variables of the same call are shown as peers: "
    "do not give feedback on them."
)

_CALL = """<CALL>
System prompt of the LLM call:
{system}
Input of the LLM call:
{input}
Output of the LLM call:
{output}
</CALL>
"""

BACKWARD_PARAMETER = _CALL + """<PEERS>
{peers}
</PEERS>
<VARIABLE {attributes}>
{value}
</VARIABLE>
<DOWNSTREAM_FEEDBACK>
{feedback}
</DOWNSTREAM_FEEDBACK>
Write your feedback for the variable {name} as JSON: {{"feedback": "..."}}"""

BACKWARD_PREDECESSOR = _CALL + """<VARIABLE role="output of an earlier step" name="{name}">
{value}
</VARIABLE>
<DOWNSTREAM_FEEDBACK>
{feedback}
</DOWNSTREAM_FEEDBACK>
The variable above was part of this call's input. Write feedback on how that earlier step's output
should change, as JSON: {{"feedback": "..."}}"""

OPTIMIZER_SYSTEM = (
    "You are an expert prompt engineer. You improve one variable (a part of an LLM call's prompt) of an "
    "LLM workflow, guided by feedback gathered on samples it got wrong. Keep what works, fix what the "
    "feedback points at, and keep the variable's role. Never copy these instructions, the feedback or "
    "the tags into the new values."
)

OPTIMIZER_USER = """<VARIABLE {attributes}>
{value}
</VARIABLE>
<PEERS>
{peers}
</PEERS>
<GRADIENTS>
{gradients}
</GRADIENTS>
<PAST_VALUES>
{history}
</PAST_VALUES>
<FAILED_PROPOSALS>
{failed}
</FAILED_PROPOSALS>
Propose {k} different improved values for {name}. Reply as JSON: {{"proposals": ["...", ...]}}"""

PEER = '<PEER {attributes}>{value}</PEER>'


def attributes(parameter) -> str:
    """A parameter's role, name and (when it has one) description, as a tag's attributes."""
    text = f'role="{parameter.role}" name="{parameter.name}"'
    return text + (f' description="{parameter.description}"' if parameter.description else "")


def peers_block(peers: list[tuple]) -> str:
    """The PEERS section: the other parameters of a call with the values they had, shown so a gradient
    or proposal can see them."""
    return "\n".join(PEER.format(attributes=attributes(p), value=value) for p, value in peers) or "(none)"


# Tags whose presence in a proposal means the meta-prompt leaked into it.
META_PROMPT_TAGS = ("<VARIABLE", "<PEERS>", "<GRADIENTS>", "<PAST_VALUES>", "<FAILED_PROPOSALS>",
                    "</VARIABLE>", "<DOWNSTREAM_FEEDBACK>", "<CALL>")

# Few-shot demos, as rendered into a "demos" parameter by the demo optimizer.
DEMOS_HEADER = "Examples of inputs and correct outputs:"
DEMO = "<EXAMPLE>\nInput:\n{input}\nOutput:\n{output}\n</EXAMPLE>"
