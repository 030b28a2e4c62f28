"""Test doubles that are real enough to measure with: a simulated HTTP provider and a scripted LLM.

Above tasks/ (it serves their simulated answers); nothing in the library imports it.
"""
from raygrad.data import Example
from raygrad.tasks.object_count import generate_object_counting
from raygrad.tasks.simulated import Responder, answers_right, hidden_cause, requested_schema, unit_hash
from raygrad.testing.responders import RESPONDERS
from raygrad.testing.scripted import ScriptedLLM
from raygrad.testing.server import ServerSettings, SimulatedServer


def object_count_examples(size: int, seed: int) -> list[Example]:
    """Generated ObjectCount questions as Examples with ids 0..size-1."""
    return [Example(id=str(i), **row) for i, row in enumerate(generate_object_counting(size, seed))]


__all__ = ["RESPONDERS", "Responder", "ScriptedLLM", "ServerSettings", "SimulatedServer", "object_count_examples",
           "answers_right", "hidden_cause", "requested_schema", "unit_hash"]
