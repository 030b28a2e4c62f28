"""The autodiff core: Parameter, LLMCall, Function, Workflow and running a sample (workflow.py), the
trace graph of a sample and its loss node (trace.py), textual gradients and their aggregation
(backward.py), and the backward engine's and optimizer's prompts (prompts.py).

Imports the LLM layer's types (completions, call errors) and nothing above; never Ray.
"""
