"""What a perfect optimizer could score on peers_cost's questions: prompts that hold all four fixes.

The simulated provider (raygrad.tasks.simulated) answers a question right when the system prompt
holds the fix for its hidden cause, apart from lucky guesses and one answer in ten flipped by a
draw hashed on the prompt and the question. Once a prompt holds the four fixes, nothing more can
be learned: its wording (the decoys beside the fixes, how they are split between instruction and
output format) only redraws those flips. This script draws such prompts at random and scores each
on peers_cost's validation and test questions, so the spread of those scores says how much of a
validation or test figure above the ceiling's mean is luck (peers_cost.py reports how many of the
four fixes each framework's final prompts hold).

    cd benchmarks && python simulator_ceiling.py [--prompts 200]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics

from common import PEERS_COST_VAL, peers_cost_questions, sized, write_table

from raygrad.data import Example
from raygrad.optim.evaluate import evaluate
from raygrad.optim.metrics import number_match
from raygrad.tasks import ObjectCount
from raygrad.tasks.simulated import DECOYS, FIXES
from raygrad.testing import RESPONDERS, ScriptedLLM


def splits(val: int) -> dict[str, list[Example]]:
    """peers_cost's validation and test questions (`--val` alike)."""
    questions = peers_cost_questions(val)
    return {name: [Example(id=str(i), **r) for i, r in enumerate(questions[name])] for name in ("val", "test")}


def all_fixes_prompt(rng: random.Random) -> ObjectCount:
    """The four fixes and up to six decoys, shuffled, split at random between the two parameters."""
    parts = list(FIXES) + rng.sample(DECOYS, rng.randint(0, 6))
    rng.shuffle(parts)
    cut = rng.randint(0, len(parts))
    return ObjectCount(instruction=" ".join(parts[:cut]) or "Answer.", output_format=" ".join(parts[cut:]) or "Reply.")


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[round(q * (len(values) - 1))]


async def scores(prompts: int, val: int) -> dict[str, list[float]]:
    data, rng = splits(val), random.Random(0)
    llm = ScriptedLLM(RESPONDERS["object_count_trainer"])  # the same rules the server plays, in this process
    found: dict[str, list[float]] = {"val": [], "test": []}
    for _ in range(prompts):
        workflow = all_fixes_prompt(rng)
        for split, examples in data.items():
            found[split].append((await evaluate(workflow, examples, llm, number_match)).score)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--val", type=int, default=PEERS_COST_VAL,
                        help="validation questions, as peers_cost.py's --val (results: simulator_ceiling_val<N>.md "
                             "unless 50)")
    args = parser.parse_args()
    found = asyncio.run(scores(args.prompts, args.val))
    rows = [[split, f"{statistics.mean(v):.3f}", f"{statistics.stdev(v):.3f}",
             f"{quantile(v, 0.1):.3f} to {quantile(v, 0.9):.3f}", f"{min(v):.2f} to {max(v):.2f}"]
            for split, v in found.items()]
    results, size = sized("simulator_ceiling", args.val)
    write_table(results,
                f"{args.prompts} prompts holding all four fixes, worded at random, on peers_cost's questions"
                + f" ({args.val} validation)" * bool(size),
                ["split", "mean", "sd", "10th to 90th percentile", "lowest to highest"], rows,
                notes=f"""Each prompt: the four fixes and 0 to 6 of the twelve decoys, shuffled, split at random between
instruction and output format; scored in-process by the rules the simulated server plays. Nothing
above the mean can be learned: a higher score is a lucky draw of the flipped answers, and a prompt's
validation score says little of its test score (correlation across these prompts: {correlation(found):.2f}).

    cd benchmarks && python simulator_ceiling.py --prompts {args.prompts}{size}""")


def correlation(found: dict[str, list[float]]) -> float:
    return statistics.correlation(found["val"], found["test"])


if __name__ == "__main__":
    main()
