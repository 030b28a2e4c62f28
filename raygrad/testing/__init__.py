"""Test doubles that are real enough to measure with: a simulated HTTP provider and a scripted LLM."""
from raygrad.testing.responders import RESPONDERS, Responder, object_count, prompt_quality
from raygrad.testing.scripted import ScriptedLLM
from raygrad.testing.server import ServerSettings, SimulatedServer

__all__ = ["RESPONDERS", "Responder", "ScriptedLLM", "ServerSettings", "SimulatedServer", "object_count",
           "prompt_quality"]
