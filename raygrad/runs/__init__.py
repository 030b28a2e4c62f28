"""Runs: what a user configures and what a run leaves behind. Run configs (config.py), the run
directory with every file name and atomic write (rundir.py), building a run's workflow and splits
(assemble.py), results tables (results.py), durable storage (storage.py), the HTML report
(report.py), progress display (progress.py) and sweep expansion (sweep_plan.py).

Imports tasks/, optim/, core/, data/ and llm/; never Ray or distributed/.
"""
