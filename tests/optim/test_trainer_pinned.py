"""Today's search, pinned: each trainer setting on each built-in task reproduces its results exactly.

A change to the trainer's structure must not change what it does. Per setting, task and seed, the
pinned figures are the calls of every role, a digest of every candidate's record (step, parameters,
value, both stages' scores, verdict and reason) and a digest of the final values. A change meant to
alter the search updates them: `python tests/optim/test_trainer_pinned.py` prints the current ones.
"""
from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from raygrad.optim.settings import TrainerConfig
from raygrad.optim.trainer import Trainer
from raygrad.testing import ScriptedLLM
from raygrad.testing.weak_prompts import TRAINER_RESPONDERS
from raygrad.testing.weak_prompts import from_weak_prompts

TASKS = {task: TRAINER_RESPONDERS[task] for task in ("objectcount", "trec", "multihop", "agent")}
SETTINGS = {"default": {}, "early_rejection_off": {"early_rejection": False},
            "per_parameter": {"candidates": "per_parameter"}, "no_pool": {"error_pool": 0},
            "stage2_1": {"stage2_per_parameter": 1}, "until_error_4": {"batches_until_error": 4},
            "at_once": {"parallel_candidates": 5}, "accept": {"early_acceptance": 0.95},
            "no_stage1": {"stage1": False}, "labeled": {"labeled_demos": True}}
PINNED = {
    "default/objectcount/0": "648 2710544c50 e004d6876b",
    "default/objectcount/1": "558 ad7ca8425c c17fdeb5cc",
    "default/trec/0": "317 168fa7c8e3 20614f31bc",
    "default/trec/1": "142 7a3f465dd2 56299249b4",
    "default/multihop/0": "506 395104512a 65ef46efb6",
    "default/multihop/1": "451 d865535e28 cb5a29e25c",
    "default/agent/0": "525 913f552b5b 2ab5e204fc",
    "default/agent/1": "554 a0c90ca88e 2bebcc2b0a",
    "early_rejection_off/objectcount/0": "1146 691217744b e004d6876b",
    "early_rejection_off/objectcount/1": "933 12a45b1ff1 c17fdeb5cc",
    "early_rejection_off/trec/0": "497 db12ee5efc 20614f31bc",
    "early_rejection_off/trec/1": "144 84842eac7f 56299249b4",
    "early_rejection_off/multihop/0": "563 5027cf0dea 65ef46efb6",
    "early_rejection_off/multihop/1": "802 8741524531 cb5a29e25c",
    "early_rejection_off/agent/0": "1129 c56f5c7d63 2ab5e204fc",
    "early_rejection_off/agent/1": "1154 5ab93f9176 2bebcc2b0a",
    "per_parameter/objectcount/0": "818 2d2e255a48 d8d43d5b8f",
    "per_parameter/objectcount/1": "919 bbc6b6be88 484ac23840",
    "per_parameter/trec/0": "517 06b5878ffb 33a3c1258b",
    "per_parameter/trec/1": "402 250b536d7d d107932ea2",
    "per_parameter/multihop/0": "894 8f65d86b6b e0d39443f0",
    "per_parameter/multihop/1": "754 5414d28636 54bb836729",
    "per_parameter/agent/0": "641 b463de0e28 2e0a24bab4",
    "per_parameter/agent/1": "764 f2b8d7940a 768cea79dc",
    "no_pool/objectcount/0": "366 c4019d8f77 e004d6876b",
    "no_pool/objectcount/1": "287 b56f25305f 77b66004e8",
    "no_pool/trec/0": "227 0049e8f49d 258d7bcc9e",
    "no_pool/trec/1": "142 7a3f465dd2 56299249b4",
    "no_pool/multihop/0": "550 5c758110f8 8f4747c5d2",
    "no_pool/multihop/1": "385 1b88de1a25 cb5a29e25c",
    "no_pool/agent/0": "415 fc9f6e63d2 2ab5e204fc",
    "no_pool/agent/1": "431 9102579c57 98a4d18c5f",
    "stage2_1/objectcount/0": "433 194cb049c3 7bc36c0be5",
    "stage2_1/objectcount/1": "485 5ffe136163 77b66004e8",
    "stage2_1/trec/0": "249 58afdf9adf 4101caa11b",
    "stage2_1/trec/1": "142 7a3f465dd2 56299249b4",
    "stage2_1/multihop/0": "678 f24939ff0a d5948acc03",
    "stage2_1/multihop/1": "451 d865535e28 cb5a29e25c",
    "stage2_1/agent/0": "539 fd09b9d58c 2ab5e204fc",
    "stage2_1/agent/1": "447 0c5d8b8319 9754c5a907",
    "until_error_4/objectcount/0": "836 60a75f6ac1 e004d6876b",
    "until_error_4/objectcount/1": "661 fd6f634ae6 90f88488e7",
    "until_error_4/trec/0": "282 6433216f2c 20614f31bc",
    "until_error_4/trec/1": "126 5880f10e1e 56299249b4",
    "until_error_4/multihop/0": "1203 79f7f7c712 e742dfbbfa",
    "until_error_4/multihop/1": "818 8363d147c7 cb5a29e25c",
    "until_error_4/agent/0": "785 06e2d51321 2f36a260c1",
    "until_error_4/agent/1": "753 4cd3a79186 2bebcc2b0a",
    "at_once/objectcount/0": "664 2710544c50 e004d6876b",
    "at_once/objectcount/1": "583 ad7ca8425c c17fdeb5cc",
    "at_once/trec/0": "363 168fa7c8e3 20614f31bc",
    "at_once/trec/1": "165 7a3f465dd2 56299249b4",
    "at_once/multihop/0": "617 395104512a 65ef46efb6",
    "at_once/multihop/1": "511 d865535e28 cb5a29e25c",
    "at_once/agent/0": "609 913f552b5b 2ab5e204fc",
    "at_once/agent/1": "602 a0c90ca88e 2bebcc2b0a",
    "accept/objectcount/0": "367 0aa050390d 3b930bad1a",
    "accept/objectcount/1": "551 44463e3a0e c17fdeb5cc",
    "accept/trec/0": "321 6073e0885e 20614f31bc",
    "accept/trec/1": "142 7a3f465dd2 56299249b4",
    "accept/multihop/0": "506 395104512a 65ef46efb6",
    "accept/multihop/1": "451 d865535e28 cb5a29e25c",
    "accept/agent/0": "525 913f552b5b 2ab5e204fc",
    "accept/agent/1": "554 a0c90ca88e 2bebcc2b0a",
    "no_stage1/objectcount/0": "377 4ced300157 ac302b6053",
    "no_stage1/objectcount/1": "582 5f563d7339 da4d682a43",
    "no_stage1/trec/0": "142 d273a52aec a1ed51eccd",
    "no_stage1/trec/1": "197 c508e7a1e4 56299249b4",
    "no_stage1/multihop/0": "551 75b2ab88ba ca09b08668",
    "no_stage1/multihop/1": "488 082b3dec37 c6ec9b224e",
    "no_stage1/agent/0": "557 c4a30ac323 32a552164c",
    "no_stage1/agent/1": "532 bf735db4a8 784c99f4c3",
    "labeled/objectcount/0": "664 8f4047ddf1 e004d6876b",
    "labeled/objectcount/1": "570 4537b54b6b c17fdeb5cc",
    "labeled/trec/0": "321 4df0e7dbb5 20614f31bc",
    "labeled/trec/1": "142 b8d999d737 56299249b4",
    "labeled/multihop/0": "506 395104512a 65ef46efb6",
    "labeled/multihop/1": "451 d865535e28 cb5a29e25c",
    "labeled/agent/0": "525 913f552b5b 2ab5e204fc",
    "labeled/agent/1": "554 a0c90ca88e 2bebcc2b0a",
}


def fingerprint(task: str, seed: int, setting: dict) -> str:
    """'calls trail values' of 12 steps (batch 4, 5 proposals) from weak prompts on the scripted provider."""
    workflow, metric, train, val = from_weak_prompts(task)
    clients = {role: ScriptedLLM(TASKS[task]) for role in ("task", "backward", "optimizer")}
    settings = TrainerConfig(steps=12, batch_size=4, proposals=5, seed=seed, **setting)
    state = asyncio.run(Trainer(workflow, metric, clients, settings).fit(train, val))

    def digest(value: object) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]

    calls = sum(len(client.calls) for client in clients.values())
    return f"{calls} {digest([c.model_dump() for c in state.candidates])} {digest(state.values)}"


@pytest.mark.parametrize("setting", SETTINGS)
def test_each_setting_reproduces_its_pinned_results_on_every_task(setting: str):
    found = {f"{setting}/{task}/{seed}": fingerprint(task, seed, SETTINGS[setting])
             for task in TASKS for seed in (0, 1)}
    assert found == {key: PINNED[key] for key in found}


if __name__ == "__main__":
    for name, setting in SETTINGS.items():
        for task in TASKS:
            for seed in (0, 1):
                print(f'    "{name}/{task}/{seed}": "{fingerprint(task, seed, setting)}",')
