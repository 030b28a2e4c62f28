"""A user's own workflow project, as raygrad runs it: `raygrad optimize config.yaml` from this folder."""
