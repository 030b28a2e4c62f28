"""The Ray runtime: the engine's algorithm, distributed over actors (see DESIGN.md, "The runtime")."""
