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
from raygrad.testing.weak_prompts import TRAINER_RESPONDERS, from_weak_prompts

TASKS = {task: TRAINER_RESPONDERS[task] for task in ("objectcount", "trec", "multihop", "agent")}
SETTINGS = {"default": {}, "early_rejection_off": {"early_rejection": False},
            "per_parameter": {"candidates": "per_parameter"}, "no_pool": {"error_pool": 0},
            "stage2_1": {"stage2_per_parameter": 1}, "until_error_4": {"batches_until_error": 4},
            "at_once": {"parallel_candidates": 5}, "accept": {"early_acceptance": 0.95},
            "no_stage1": {"stage1": False}, "labeled": {"labeled_demos": True}}
PINNED = {
    "default/objectcount/0": "665 b4c49d2d17 e004d6876b",
    "default/objectcount/1": "554 4cd0d6652d c17fdeb5cc",
    "default/trec/0": "307 f74664c3bf b25deac7fa",
    "default/trec/1": "142 7a3f465dd2 56299249b4",
    "default/multihop/0": "506 8044e6b7a3 d52e86ae2b",
    "default/multihop/1": "520 143eab051b 2a260c6b24",
    "default/agent/0": "468 22d6745f2b 2ab5e204fc",
    "default/agent/1": "675 808786140f d83ae22b7d",
    "early_rejection_off/objectcount/0": "1188 1a64f721ed e004d6876b",
    "early_rejection_off/objectcount/1": "994 2c972d0181 c17fdeb5cc",
    "early_rejection_off/trec/0": "442 7b3a39c8c3 b25deac7fa",
    "early_rejection_off/trec/1": "144 84842eac7f 56299249b4",
    "early_rejection_off/multihop/0": "563 df8b8f88f7 d52e86ae2b",
    "early_rejection_off/multihop/1": "865 60fceb25d2 2a260c6b24",
    "early_rejection_off/agent/0": "1029 49053e580e 2ab5e204fc",
    "early_rejection_off/agent/1": "1051 42dfe4aa06 d83ae22b7d",
    "per_parameter/objectcount/0": "815 290de6db63 d8d43d5b8f",
    "per_parameter/objectcount/1": "349 a230e67509 faed7f2cbe",
    "per_parameter/trec/0": "468 912304d832 2c446085a0",
    "per_parameter/trec/1": "562 2b953dfdfc a7200dcb06",
    "per_parameter/multihop/0": "1041 2f60d9d6b3 b48418bfe7",
    "per_parameter/multihop/1": "733 356734ede9 54bb836729",
    "per_parameter/agent/0": "773 622caee66e f779b95a39",
    "per_parameter/agent/1": "758 0a4341c001 768cea79dc",
    "no_pool/objectcount/0": "366 c4019d8f77 e004d6876b",
    "no_pool/objectcount/1": "272 1509fa9150 77b66004e8",
    "no_pool/trec/0": "329 2f132ed77a f873894726",
    "no_pool/trec/1": "142 7a3f465dd2 56299249b4",
    "no_pool/multihop/0": "550 73f200bbfa 8f4747c5d2",
    "no_pool/multihop/1": "385 4dc9bd7083 cb5a29e25c",
    "no_pool/agent/0": "374 580fb33fe6 2ab5e204fc",
    "no_pool/agent/1": "431 9102579c57 98a4d18c5f",
    "stage2_1/objectcount/0": "504 3e8dab3aa3 66319e7401",
    "stage2_1/objectcount/1": "473 65431d37f4 77b66004e8",
    "stage2_1/trec/0": "130 0f60e9cab3 6121578dd3",
    "stage2_1/trec/1": "142 7a3f465dd2 56299249b4",
    "stage2_1/multihop/0": "689 e580a259f1 260904b27c",
    "stage2_1/multihop/1": "469 93e780aedd cb5a29e25c",
    "stage2_1/agent/0": "468 22d6745f2b 2ab5e204fc",
    "stage2_1/agent/1": "460 25be6f6fc5 e8cbc5a01f",
    "until_error_4/objectcount/0": "833 4eb7a5eed8 e004d6876b",
    "until_error_4/objectcount/1": "727 84198b6f23 c17fdeb5cc",
    "until_error_4/trec/0": "352 57713a09f8 6121578dd3",
    "until_error_4/trec/1": "126 5880f10e1e 56299249b4",
    "until_error_4/multihop/0": "867 5402b87a0e dd006e480c",
    "until_error_4/multihop/1": "821 237d176ce0 2a260c6b24",
    "until_error_4/agent/0": "644 8b64209775 2ab5e204fc",
    "until_error_4/agent/1": "846 e4198cf173 d83ae22b7d",
    "at_once/objectcount/0": "681 b4c49d2d17 e004d6876b",
    "at_once/objectcount/1": "586 4cd0d6652d c17fdeb5cc",
    "at_once/trec/0": "342 f74664c3bf b25deac7fa",
    "at_once/trec/1": "165 7a3f465dd2 56299249b4",
    "at_once/multihop/0": "617 8044e6b7a3 d52e86ae2b",
    "at_once/multihop/1": "586 143eab051b 2a260c6b24",
    "at_once/agent/0": "552 22d6745f2b 2ab5e204fc",
    "at_once/agent/1": "750 808786140f d83ae22b7d",
    "accept/objectcount/0": "367 0aa050390d 3b930bad1a",
    "accept/objectcount/1": "547 cf93d50ea9 c17fdeb5cc",
    "accept/trec/0": "311 a0fa69dcfc b25deac7fa",
    "accept/trec/1": "142 7a3f465dd2 56299249b4",
    "accept/multihop/0": "506 8044e6b7a3 d52e86ae2b",
    "accept/multihop/1": "520 143eab051b 2a260c6b24",
    "accept/agent/0": "468 22d6745f2b 2ab5e204fc",
    "accept/agent/1": "675 808786140f d83ae22b7d",
    "no_stage1/objectcount/0": "377 4ced300157 ac302b6053",
    "no_stage1/objectcount/1": "497 a5d1b70b47 da4d682a43",
    "no_stage1/trec/0": "142 d273a52aec a1ed51eccd",
    "no_stage1/trec/1": "197 c508e7a1e4 56299249b4",
    "no_stage1/multihop/0": "551 75b2ab88ba ca09b08668",
    "no_stage1/multihop/1": "488 375e03c582 ab634b2db4",
    "no_stage1/agent/0": "597 a1e8dd299b fbe3438699",
    "no_stage1/agent/1": "523 99dcececfe 784c99f4c3",
    "labeled/objectcount/0": "681 5622fef03b e004d6876b",
    "labeled/objectcount/1": "566 ead42a4fe6 c17fdeb5cc",
    "labeled/trec/0": "311 b2e6c8556f b25deac7fa",
    "labeled/trec/1": "142 b8d999d737 56299249b4",
    "labeled/multihop/0": "506 8044e6b7a3 d52e86ae2b",
    "labeled/multihop/1": "520 143eab051b 2a260c6b24",
    "labeled/agent/0": "468 22d6745f2b 2ab5e204fc",
    "labeled/agent/1": "675 808786140f d83ae22b7d",
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
