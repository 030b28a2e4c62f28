"""The simulated provider answers OpenAI's Responses API like chat completions: same budget, same answers."""
from __future__ import annotations

import openai
import pytest

from raygrad.tasks.object_count import generate_object_counting
from raygrad.tasks.object_count import respond as object_count


def test_responses_api_gets_the_chat_answer_and_the_same_budget(sim_server):
    server = sim_server(responder="object_count", rpm=60, window_s=1.0)  # 1 request per second
    client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)
    question = generate_object_counting(1, seed=3)[0]["input"]
    reply = client.responses.create(model="simulated", instructions="Count each item.", input=question)
    assert reply.output_text == object_count([{"role": "system", "content": "Count each item."},
                                              {"role": "user", "content": question}], {})
    assert reply.usage.input_tokens == len(("Count each item. " + question).split())
    with pytest.raises(openai.RateLimitError):  # the second within the window is refused, as in chat
        client.responses.create(model="simulated", input=[{"role": "user", "content": [
            {"type": "input_text", "text": question}]}])
    assert [(e.status, e.messages[-1]["content"]) for e in server.log] == [(200, question), (429, question)]


def test_a_held_server_logs_requests_but_answers_only_once_released(sim_server):
    import concurrent.futures

    server = sim_server(responder="echo")
    client = openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0)

    def ask(text: str) -> str:
        return client.chat.completions.create(model="simulated", messages=[{"role": "user", "content": text}]
                                              ).choices[0].message.content

    server.hold()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = [pool.submit(ask, text) for text in ("one", "two")]
        done, _ = concurrent.futures.wait(replies, timeout=1.0)
        assert not done and len(server.log) == 2  # arrived, logged, not answered
        server.release()
        assert [r.result(timeout=10) for r in replies] == ["one", "two"]
    assert ask("three") == "three"
