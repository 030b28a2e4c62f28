"""The Ray runtime: the Ray-free algorithm of optim/ spread over actors (see DESIGN.md, "The runtime").

actors.py    thin actors (RateBudget, ForwardWorker, GradientAggregator, OptimizerActor) holding state
dispatch.py  RayExecutor: the trainer's samples in shards over the workers; RuntimeSpec
runtime.py   connecting to Ray and starting one run's actors
optimize.py  one run from its config to its result files
sweep.py     many runs on one cluster, sharing one rate budget

The top layer with the CLI: imports anything below, and nothing below imports it.
"""
