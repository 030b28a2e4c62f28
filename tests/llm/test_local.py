"""The embedded local model, for real: llama.cpp serving SmolLM2 on loopback, called through litellm."""
from __future__ import annotations

import pytest
from pydantic import BaseModel

from raygrad.llm.client import LLMClient
from raygrad.llm.local import LOCAL_ENDPOINT_ID, LocalModelServer, find_local_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_server():
    with LocalModelServer(n_ctx=2048) as server:
        yield server


class Count(BaseModel):
    count: int


async def test_local_model_answers_a_chat_request_through_litellm(local_server):
    assert find_local_gguf().name.endswith(".gguf")
    client = LLMClient(local_server.model_config(), endpoint_id=LOCAL_ENDPOINT_ID)
    completion = await client.complete([{"role": "user", "content": "What is the capital of France?"}],
                                       max_tokens=24)
    assert completion.text.strip() and completion.completion_tokens > 0 and completion.prompt_tokens > 0
    assert client.usage.calls == 1


async def test_local_model_returns_schema_valid_json(local_server):
    client = LLMClient(local_server.model_config(), endpoint_id=LOCAL_ENDPOINT_ID)
    # A grammar built from the schema constrains the 135M model's sampling, so the reply always parses.
    reply = await client.complete_structured(
        [{"role": "user", "content": "I have two apples and a pear. How many fruits? Reply in JSON."}], Count,
        max_tokens=32)
    assert isinstance(reply.count, int)
