"""Ctrl-C during a run on Ray: one line saying how to resume. A module of its own: the run starts its own
local Ray instance, and no other test cluster may be running beside it."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.ray
def test_ctrl_c_during_an_optimization_on_ray_ends_in_one_line(sim_server, tmp_path):
    import signal
    import time

    server = sim_server(responder="object_count_trainer", latency_s=0.3)
    model = f'{{model: openai/simulated, api_base: "{server.url}"}}'
    config = tmp_path / "run.yaml"
    config.write_text(f"""name: cut
output_dir: {tmp_path / 'runs'}
workflow: {{name: object_count, instruction: "Answer.", output_format: "Reply."}}
data: {{generator: {{size: 200, seed: 4}}, splits: {{train: "0:20", val: "20:150", test: "150:200"}}}}
models: {{task: {model}, backward: {model}, optimizer: {model}}}
trainer: {{steps: 3, batch_size: 4, proposals: 2}}
""")
    process = subprocess.Popen([sys.executable, "-m", "raygrad", "optimize", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # its own local Ray instance
    deadline = time.monotonic() + 120
    while len(server.log) < 30 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (f"raygrad: interrupted; completed calls are in the journal: run "
                                            f"`raygrad optimize {config}` again to resume")
