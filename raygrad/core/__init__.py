"""The autodiff core: Parameter, LLMCall, Function, Workflow, the trace graph and its loss node
(graph.py), textual gradients and their aggregation (backward.py), and the prompts (prompts.py).

Imports the LLM layer's types (completions, call errors) and nothing above; never Ray.
"""
