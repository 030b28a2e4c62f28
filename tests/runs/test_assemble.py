"""A workflow's mistakes that would cost calls, or show only on Ray, are named before anything starts."""
from __future__ import annotations

import pickle
import threading

import pytest

from raygrad.core.workflow import LLMCall, Parameter, Workflow
from raygrad.errors import ConfigError
from raygrad.runs.assemble import check_workflow, first_unpicklable


class Fixed(Workflow):
    def __init__(self):
        self.answer = LLMCall(system=[Parameter("Answer.", trainable=False)])

    async def forward(self, question):
        return await self.answer(question=question)


class Forgetful(Workflow):
    def __init__(self):
        self.answer = LLMCall(system=[Parameter("Answer.")])

    async def forward(self, question):
        await self.answer(question=question)  # the prediction is never returned


class Holding(Workflow):
    def __init__(self):
        self.answer = LLMCall(system=[Parameter("Answer.")])
        self.cache = {"lock": threading.Lock()}

    async def forward(self, question):
        return await self.answer(question=question)


def test_a_workflow_with_nothing_to_train_is_refused():
    with pytest.raises(ConfigError, match="Fixed has no trainable Parameter: nothing to optimize"):
        check_workflow(Fixed())
    with pytest.raises(ConfigError, match=r"no trainable Parameter among trainer.parameters \['other'\]"):
        check_workflow(Holding(), ["other"])
    check_workflow(Holding())  # one trainable parameter: nothing to say


def test_a_forward_that_returns_nothing_is_refused():
    with pytest.raises(ConfigError, match=r"Forgetful.forward returns no value.*end it with `return <prediction>`"):
        check_workflow(Forgetful())


def test_the_attribute_that_cannot_be_pickled_is_named():
    assert first_unpicklable(Fixed(), pickle.dumps) is None
    where = first_unpicklable(Holding(), pickle.dumps)
    assert where is not None and where.startswith("workflow.cache.lock (lock: cannot pickle '_thread.lock'")
