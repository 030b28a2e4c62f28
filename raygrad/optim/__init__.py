"""Optimization without Ray: the trainer (trainer.py) and its checkpointed state (state.py); the parts it
composes, each in its own module: minibatches (minibatches.py), which values a step builds on (parents.py,
with merge.py), how candidates are formed (candidates.py), how they are validated (validation.py), when to
stop (stopping.py); its typed events (events.py); the
executor protocol and the Ray-free executor (execution.py); one file per optimizer (tgd.py, demos.py;
optimizer.py is their protocol); evaluation (evaluate.py), metrics (metrics.py) and the trainer's settings
and limits (settings.py).

Imports core/, data/ and llm/; never Ray (a test checks), never runs/ or distributed/.
"""
