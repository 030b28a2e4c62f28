"""The LLM client against the simulated provider on loopback: faults, limits, journal, structured output."""
from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import datetime, timezone

import aiohttp
import litellm
import pytest
from pydantic import BaseModel

from raygrad.data import Example
from raygrad.llm.client import InvalidReply, LLMCallFailed, LLMClient, _retry_after, parse_structured
from raygrad.llm.journal import Journal
from raygrad.llm.limits import EndpointLimiter, parse_duration
from raygrad.optim.evaluate import evaluate
from raygrad.optim.metrics import number_match
from raygrad.tasks import ObjectCount
from raygrad.tasks.object_count import generate_object_counting

PERFECT_PROMPT = "Think step by step. Count each item; ignore the others. Give only the total as 'Answer: N'."


def examples(n: int, seed: int = 3) -> list[Example]:
    return [Example(id=str(i), **row) for i, row in enumerate(generate_object_counting(n, seed))]


@pytest.mark.parametrize("transport", ["openai", "litellm"])
async def test_429_storm_and_injected_faults_lose_no_sample_and_score_none_wrong(sim_server, transport):
    # A tight budget (20 per 1 s window) plus 5xx, hangs and broken bodies.
    server = sim_server(responder="object_count", rpm=1200, window_s=1, error_rate=0.15, hang_rate=0.05,
                        hang_s=2, malformed_rate=0.05, seed=7)
    # The client is told a looser rpm than the server enforces, so it really meets 429s.
    client = LLMClient(server.model_config(rpm=4800, timeout_s=0.5, retry_deadline_s=60, max_in_flight=64,
                                           transport=transport))
    workflow = ObjectCount(instruction=PERFECT_PROMPT, output_format="")
    data = examples(60)
    report = await evaluate(workflow, data, client, number_match)
    assert report.failed == 0 and report.completed == 60
    faults = {f: sum(e.fault == f for e in server.log) for f in ("rate_limited", "error", "hang", "malformed")}
    assert faults["rate_limited"] > 0 and faults["error"] > 0 and faults["hang"] > 0 and faults["malformed"] > 0
    # Same prompt and questions on a fault-free server: the exact same scores, so no fault became a wrong answer.
    clean = sim_server(responder="object_count")
    reference = await evaluate(workflow, data, LLMClient(clean.model_config()), number_match)
    assert [s.score for s in report.samples] == [s.score for s in reference.samples]
    assert client.usage.rate_limited == faults["rate_limited"]


async def test_configured_rpm_is_never_exceeded_on_the_server_log(sim_server):
    server = sim_server(responder="echo")  # no server-side budget: only the client's pacing holds it
    client = LLMClient(server.model_config(rpm=600, max_in_flight=100))  # one request every 0.1 s
    await asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}]) for i in range(25)))
    times = sorted(e.time for e in server.log)
    assert len(times) == 25
    # Never k requests closer than k paces, on the server's clock. An arrival may lag its send by up to
    # 20 ms (the first request opens a connection; CI is busy): a lag shortens one gap, it does not add up.
    assert all(times[j] - times[i] >= (j - i) * 0.1 - 0.02 for i in range(25) for j in range(i + 1, 25))


async def test_a_fresh_client_sets_litellm_up_before_its_first_send_time_without_a_request(sim_server, monkeypatch):
    """litellm's first call in a process spends ~0.4 s on itself; spent after a send time, the request
    reached the provider late, bunched with the next ones (refusals at a sweep's cold start)."""
    server = sim_server(responder="echo")
    client = LLMClient(server.model_config(rpm=600, transport="litellm"))
    events, slot, acompletion = [], client.limiter.slot, litellm.acompletion

    def recorded_slot(*args, **kwargs):
        events.append("send time")
        return slot(*args, **kwargs)

    async def recorded_acompletion(**kwargs):
        events.append("mock" if "mock_response" in kwargs else "request")
        return await acompletion(**kwargs)

    monkeypatch.setattr(client.limiter, "slot", recorded_slot)
    monkeypatch.setattr(litellm, "acompletion", recorded_acompletion)
    await asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}]) for i in range(3)))
    assert events[0] == "mock" and events.count("mock") == 1  # once, before any send time, for all three
    assert events.count("request") == len(server.log) == 3  # the warm-up reached no provider


@pytest.mark.parametrize("style", ["openai", "anthropic"])
async def test_a_per_minute_limit_enforced_over_short_windows_sees_even_pacing_and_no_lost_request(sim_server, style):
    # 600 rpm enforced as 30 per 3 s. The headers report the minute's figures, as the providers do,
    # and the client does not take them for a window: it paces evenly, one request per 0.1 s.
    server = sim_server(responder="echo", rpm=600, window_s=3, latency_s=0.2, headers=style)
    client = LLMClient(server.model_config(rpm=600, max_in_flight=200))
    replies = await asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}]) for i in range(60)))
    accepted = sorted(e.time for e in server.log if e.fault is None)
    assert [r.text for r in replies] == [f"q{i}" for i in range(60)] and len(accepted) == 60
    # Pacing is exact, not widened: a request that reaches the server a few ms later than the one 30 after
    # it puts 31 in a window now and then (once in 3,000 calls in rate_limit.py); it is retried, not lost.
    assert len(server.refused()) <= 1
    assert max(sum(s <= t < s + 3 for t in accepted) for s in accepted) <= 31  # 30 per 3 s, plus arrival jitter
    assert sum(t < accepted[0] + 1.5 for t in accepted) <= 16  # no burst: about 15 in the first 1.5 s
    arrivals = sorted(e.time for e in server.log)  # a refused request's retry included
    assert arrivals[59] - arrivals[0] < 59 * 0.1 + 0.3  # and keeps up with the pace


def _limiter() -> EndpointLimiter:
    return EndpointLimiter(rpm=600, tpm=None, max_in_flight=4)


@pytest.mark.parametrize("headers, wait", [
    ({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1m30s"}, 90.0),  # OpenAI
    ({"llm_provider-x-ratelimit-remaining-tokens": "0", "llm_provider-x-ratelimit-reset-tokens": "250ms"}, 0.25),
    ({"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "AT+12"}, 12.0),
    ({"x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "6m0s"}, None),  # one left: no pause
    ({"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "7"}, None),  # a limit sets no window
])
def test_rate_limit_headers_pause_only_when_nothing_remains(headers, wait):
    sent = time.monotonic()
    at = datetime.fromtimestamp(time.time() + 12, timezone.utc).isoformat().replace("+00:00", "Z")
    limiter = _limiter()
    limiter.observe_headers({k: v.replace("AT+12", at) for k, v in headers.items()}, sent)
    window = limiter.requests
    assert (window.capacity, window.window) == (1, 0.1)  # the pace is the configured rpm, whatever the headers
    if wait is None:
        assert window._paused_until == 0.0
    else:
        assert window._paused_until == pytest.approx(sent + wait, abs=1.0 if "anthropic" in str(headers) else 1e-6)


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "350", "retry-after": "1"}, 0.35),  # OpenAI and Azure: milliseconds first
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after": "DATE+3"}, 3.0),  # an HTTP date
])
def test_a_refusal_waits_as_long_as_its_retry_after_headers_say(headers, seconds):
    date = email.utils.formatdate(time.time() + 3, usegmt=True)
    refusal = litellm.RateLimitError("refused", llm_provider="openai", model="m")
    refusal.litellm_response_headers = {k: v.replace("DATE+3", date) for k, v in headers.items()}
    assert _retry_after(refusal) == pytest.approx(seconds, abs=1.0 if "DATE" in str(headers) else 1e-6)


async def test_the_simulated_provider_writes_openais_headers_and_error_body(sim_server):
    server = sim_server(responder="echo", rpm=600, window_s=0.2)  # 2 per 0.2 s
    async with aiohttp.ClientSession() as session:
        replies, sent = [], []
        for _ in range(3):
            sent.append(time.monotonic())
            async with session.post(f"{server.url}/chat/completions", json={"model": "m", "messages": []}) as reply:
                replies.append((reply.status, reply.headers.copy(), await reply.json()))
    (ok, first, _), (_, second, _), (refused, third, body) = replies
    assert (ok, refused) == (200, 429)
    assert first["x-ratelimit-limit-requests"] == "600" and first["x-ratelimit-remaining-requests"] == "599"
    assert first["x-ratelimit-reset-requests"] == "100ms"  # the minute's bucket refills one request per 0.1 s
    # The window opened with the first request: the second's reset is what remains of it when it arrived.
    remaining = parse_duration(second["x-ratelimit-reset-requests"])
    assert 0.2 - (sent[2] - sent[0]) - 0.005 <= remaining <= 0.2 + 0.005
    assert int(third["retry-after-ms"]) <= 200 and third["retry-after"] == "1"
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "requests"
    assert body["error"]["message"].startswith("Rate limit reached for m in organization ")


async def test_a_call_that_keeps_failing_is_a_failed_sample_not_a_wrong_one(sim_server):
    server = sim_server(responder="object_count", error_rate=1.0)
    client = LLMClient(server.model_config(retry_deadline_s=1.0))
    report = await evaluate(ObjectCount(), examples(3), client, number_match)
    assert report.failed == 3 and report.completed == 0 and report.score is None  # nothing scored: no 0.0
    assert all(s.score is None and "gave up" in s.error for s in report.samples)


async def test_journal_serves_a_repeated_call_without_a_request(sim_server, tmp_path):
    server = sim_server(responder="echo")
    journal = Journal(tmp_path / "journal.sqlite")
    client = LLMClient(server.model_config(), journal=journal)
    messages = [{"role": "user", "content": "the same question"}]
    first = await client.complete(messages)
    second = await client.complete(messages)
    assert len(server.log) == 1
    assert second.cached and second.text == first.text and client.usage.cached_calls == 1
    # A new client and a new journal connection (a resumed run) replays it too.
    resumed = LLMClient(server.model_config(), journal=Journal(tmp_path / "journal.sqlite"))
    assert (await resumed.complete(messages)).text == first.text and len(server.log) == 1
    # A different sampling parameter or endpoint is a different call.
    await client.complete(messages, max_tokens=5)
    assert len(server.log) == 2


async def test_identical_calls_in_flight_at_once_are_paid_once(sim_server, tmp_path):
    server = sim_server(responder="echo", latency_s=0.2)
    client = LLMClient(server.model_config(), journal=Journal(tmp_path / "journal.sqlite"))
    same = [{"role": "user", "content": "a question asked twice in one batch"}]
    replies = await asyncio.gather(*(client.complete(same) for _ in range(3)),
                                   client.complete([{"role": "user", "content": "another"}]))
    assert len(server.log) == 2 and len({r.text for r in replies[:3]}) == 1
    assert client.usage.calls == 2 and client.usage.cached_calls == 2
    # Sampled calls are separate draws: each is made.
    await asyncio.gather(*(client.complete(same, temperature=1.0) for _ in range(2)))
    assert len(server.log) == 4


async def test_callers_waiting_on_a_call_whose_maker_is_cancelled_make_it_themselves(sim_server, tmp_path):
    server = sim_server(responder="echo", latency_s=0.3)
    client = LLMClient(server.model_config(), journal=Journal(tmp_path / "journal.sqlite"))
    same = [{"role": "user", "content": "asked by three samples"}]
    maker, *waiters = [asyncio.ensure_future(client.complete(same)) for _ in range(3)]
    while not server.log:
        await asyncio.sleep(0.01)
    maker.cancel()
    replies = await asyncio.gather(*waiters)
    assert maker.cancelled() and len({r.text for r in replies}) == 1 and "asked by three samples" in replies[0].text
    assert len(server.log) == 2 and client.usage.cached_calls == 1  # one waiter made it again, the other waited
    # A failed call reaches its waiters as the maker's error, each raised once.
    failing = LLMClient(sim_server(responder="echo", error_rate=1.0).model_config(retry_deadline_s=0.5))
    outcomes = await asyncio.gather(*(failing.complete(same) for _ in range(2)), return_exceptions=True)
    assert all(isinstance(o, LLMCallFailed) for o in outcomes) and not failing._in_flight


async def test_a_sent_call_whose_caller_is_cancelled_is_journaled_and_an_unsent_one_is_never_sent(sim_server,
                                                                                                   tmp_path):
    """Early rejection cancels validation shards in flight: a request already sent is paid for, so its reply
    is journaled when it comes (a resume replays it); one still waiting for a place in flight never leaves."""
    server = sim_server(responder="echo", latency_s=0.5)
    client = LLMClient(server.model_config(max_in_flight=1), journal=Journal(tmp_path / "journal.sqlite"))
    sent, waiting = ([{"role": "user", "content": text}] for text in ("sent before the cut", "not sent yet"))
    calls = [asyncio.ensure_future(client.complete(messages)) for messages in (sent, waiting)]
    while not server.log:
        await asyncio.sleep(0.01)
    for call in calls:
        call.cancel()
    await asyncio.sleep(1.0)  # the reply to the sent request arrives
    assert len(server.log) == 1 and client.usage.calls == 1
    resumed = LLMClient(server.model_config(), journal=Journal(tmp_path / "journal.sqlite"))
    assert (await resumed.complete(sent)).cached and len(server.log) == 1


async def test_sampled_calls_are_not_replayed_unless_tagged(sim_server, tmp_path):
    server = sim_server(responder="echo")
    client = LLMClient(server.model_config(temperature=0.7), journal=Journal(tmp_path / "j.sqlite"))
    messages = [{"role": "user", "content": "write a poem"}]
    await client.complete(messages)
    await client.complete(messages)
    assert len(server.log) == 2
    await client.complete(messages, journal_tag="step-3/proposal-1")
    await client.complete(messages, journal_tag="step-3/proposal-1")
    assert len(server.log) == 3


async def test_api_key_is_sent_but_never_journaled(sim_server, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYGRAD_TEST_KEY", "sk-secret-value-123")
    server = sim_server(responder="echo")
    journal_path = tmp_path / "journal.sqlite"
    client = LLMClient(server.model_config(api_key_env="RAYGRAD_TEST_KEY"), journal=Journal(journal_path))
    await client.complete([{"role": "user", "content": "hello"}])
    for file in tmp_path.iterdir():
        assert b"sk-secret-value-123" not in file.read_bytes()


class Verdict(BaseModel):
    answer: int
    reason: str


async def test_structured_output_is_requested_and_validated(sim_server):
    replies = iter(['```json\n{"answer": 4, "reason": "counted"}\n```', '{"answer": "many"}'])
    server = sim_server(responder_fn=lambda messages, body: next(replies))
    client = LLMClient(server.model_config())
    verdict = await client.complete_structured([{"role": "user", "content": "count"}], Verdict)
    assert verdict == Verdict(answer=4, reason="counted")
    assert server.log[0].response_format["json_schema"]["schema"]["required"] == ["answer", "reason"]
    with pytest.raises(InvalidReply):
        await client.complete_structured([{"role": "user", "content": "count again"}], Verdict)


async def test_both_transports_send_the_same_body_and_read_the_same_reply_tokens_and_price(sim_server):
    """The OpenAI SDK (the default for an OpenAI-compatible server) and litellm: the same request on the
    wire, the same Completion, the same price, the same structured reply; so the same journal too."""
    sent, completions, verdicts = {}, {}, {}
    for transport in ("openai", "litellm"):
        bodies = sent[transport] = []
        server = sim_server(responder_fn=lambda messages, body, seen=bodies: seen.append(body) or (
            '{"answer": 4, "reason": "counted"}' if body.get("response_format") else "four apples"))
        client = LLMClient(server.model_config(
            transport=transport, max_tokens=50, seed=3, extra={"top_k": 5}, input_cost_per_token=2e-6,
            output_cost_per_token=8e-6))
        completions[transport] = await client.complete([{"role": "system", "content": "Count."},
                                                        {"role": "user", "content": "2 apples and 2 more"}])
        verdicts[transport] = await client.complete_structured([{"role": "user", "content": "count"}], Verdict)
    assert sent["openai"] == sent["litellm"]
    assert sent["openai"][0]["model"] == "simulated" and sent["openai"][0]["top_k"] == 5
    assert sent["openai"][0]["max_tokens"] == 50 and sent["openai"][0]["seed"] == 3
    ours, theirs = completions["openai"], completions["litellm"]
    assert ours.model_dump(exclude={"latency_s"}) == theirs.model_dump(exclude={"latency_s"})
    assert ours.text == "four apples" and ours.cost == pytest.approx(
        ours.prompt_tokens * 2e-6 + ours.completion_tokens * 8e-6) and ours.cost > 0
    assert verdicts["openai"] == verdicts["litellm"] == Verdict(answer=4, reason="counted")


async def test_the_sdk_transport_sends_what_the_sdks_create_sends_without_its_typed_walk(sim_server):
    """raygrad posts the body as it is; the SDK's `create` first walks it against its typed parameters. On
    the wire the two are the same request, for text, image parts, tools and their replies, a schema and a
    server's own settings; the same key arrives; the reply reads the same."""
    import openai

    from raygrad.llm.transport import OpenAITransport

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    word = {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]}
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look a word up.", "parameters": word}}
    messages = [{"role": "system", "content": "Answer."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"word": "x"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a letter"}]
    schema = {"type": "json_schema",
              "json_schema": {"name": "Verdict", "strict": True, "schema": Verdict.model_json_schema()}}
    sampling = {"temperature": 0.0, "max_tokens": 50, "seed": 3, "stop": ["\n\n"], "tools": [tool],
                "tool_choice": "auto", "response_format": schema, "top_k": 5}
    bodies: list[dict] = []
    server = sim_server(responder_fn=lambda _messages, body: bodies.append(body) or "four apples", rpm=600,
                        api_key="sk-test-123")
    ours = await OpenAITransport(server.model_config(), lambda: "sk-test-123").send(messages, sampling)
    sdk = openai.AsyncOpenAI(base_url=server.url, api_key="sk-test-123", max_retries=0)
    typed = {name: value for name, value in sampling.items() if name != "top_k"}
    theirs = await sdk.chat.completions.create(model="simulated", messages=messages, extra_body={"top_k": 5}, **typed)
    await sdk.close()
    assert bodies[0] == bodies[1] and bodies[0]["messages"][1]["content"][1] == image
    assert bodies[0]["tools"] == [tool] and bodies[0]["top_k"] == 5 and "stream" not in bodies[0]
    assert [e.status for e in server.log] == [200, 200]  # the server takes only that key
    assert type(ours.response) is type(theirs)
    assert ours.response.model_dump(exclude={"id", "created"}) == theirs.model_dump(exclude={"id", "created"})
    assert ours.response.choices[0].message.content == "four apples"
    assert ours.headers["x-ratelimit-limit-requests"] == "600"


def test_the_openai_sdk_sends_to_openai_compatible_servers_and_litellm_to_the_rest():
    from raygrad.llm.models import ModelConfig
    from raygrad.llm.transport import uses_openai_sdk

    assert uses_openai_sdk(ModelConfig(model="openai/qwen", api_base="http://10.0.0.5:8000/v1"))  # vLLM, say
    assert not uses_openai_sdk(ModelConfig(model="openai/gpt-4o-mini"))  # OpenAI itself: litellm
    assert not uses_openai_sdk(ModelConfig(model="anthropic/claude-3-5-haiku-latest", api_base="http://gateway"))
    assert not uses_openai_sdk(ModelConfig(model="openai/qwen", api_base="http://h/v1", transport="litellm"))
    assert uses_openai_sdk(ModelConfig(model="openai/gpt-4o-mini", transport="openai"))


def test_the_sdk_path_reads_litellms_price_map_as_litellm_does():
    """Prices and structured-output support, read from litellm's map without litellm, for every model in the
    map (as `openai/<key>`: most are no OpenAI model) and names it does not know: as litellm gives them."""
    from raygrad.llm.models import ModelConfig
    from raygrad.llm.transport import LiteLLMTransport, OpenAITransport, bundled_price_map

    names = [f"openai/{key}" for key in bundled_price_map() if key != "sample_spec"]
    differ, known = [], 0
    for name in [*names, "openai/simulated", "openai/meta-llama/Llama-3.1-8B-Instruct"]:
        config = ModelConfig(model=name, api_base="http://127.0.0.1:1/v1")
        ours = OpenAITransport(config, lambda: "k").model_facts()
        theirs = LiteLLMTransport(config, lambda: "k").model_facts()
        known += ours is not None
        if ours != theirs:
            differ.append((name, ours, theirs))
    assert not differ
    assert known > 100 and ModelConfig(model="openai/gpt-4o").model == "openai/gpt-4o"


def test_a_client_of_an_openai_compatible_server_never_imports_litellm(sim_server, tmp_path):
    """litellm costs a process 3 s of CPU and 140 MB to import: a Ray worker calling a self-hosted server
    would pay them at every start. A call, a structured call and a journal, in a fresh interpreter."""
    import subprocess
    import sys

    server = sim_server(responder_fn=lambda messages, body: '{"answer": 4, "reason": "counted"}')
    code = f"""
import asyncio, sys
from pydantic import BaseModel
import raygrad.distributed.actors  # a forward worker's modules
from raygrad.llm.client import LLMClient
from raygrad.llm.journal import Journal
from raygrad.llm.models import ModelConfig

class Verdict(BaseModel):
    answer: int
    reason: str

client = LLMClient(ModelConfig(model="openai/simulated", api_base={server.url!r}),
                   journal=Journal({str(tmp_path / "journal.sqlite")!r}))
async def main():
    print((await client.complete([{{"role": "user", "content": "count"}}])).text)
    print(await client.complete_structured([{{"role": "user", "content": "count"}}], Verdict))

asyncio.run(main())
print("litellm imported:", "litellm" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['{"answer": 4, "reason": "counted"}', "answer=4 reason='counted'",
                                        "litellm imported: False"]
    assert len(server.log) == 2 and server.log[1].response_format["type"] == "json_schema"


def test_a_client_left_by_an_ended_event_loop_is_collected_quietly_in_the_next(sim_server):
    """One asyncio.run after another (a notebook, a script that evaluates twice): the SDK's own HTTP client
    closed itself when collected, on the loop then running, and printed "Event loop is closed" tracebacks."""
    import subprocess
    import sys

    server = sim_server()
    code = f"""
import asyncio, gc
from raygrad.llm.client import LLMClient
from raygrad.llm.models import ModelConfig

async def once():
    client = LLMClient(ModelConfig(model="openai/simulated", api_base={server.url!r}))
    await client.complete([{{"role": "user", "content": "hi"}}])

async def later():
    gc.collect()  # the first loop's client, its connection open, collected while this loop runs
    await asyncio.sleep(0.1)

asyncio.run(once())
asyncio.run(later())
print("done")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
    assert len(server.log) == 1


def test_parse_structured_rejects_prose():
    with pytest.raises(InvalidReply):
        parse_structured("I think the answer is four.", Verdict)
    assert parse_structured('Sure! {"answer": 2, "reason": "x"} Hope it helps', Verdict).answer == 2


async def test_a_programming_error_fails_at_once_and_is_not_retried_as_a_provider_failure(sim_server, monkeypatch):
    import time

    server = sim_server(responder="echo")
    client = LLMClient(server.model_config(retry_deadline_s=60, transport="litellm"))

    async def broken(**kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(litellm, "acompletion", broken)
    started = time.monotonic()
    with pytest.raises(TypeError, match="unsupported operand"):
        await client.complete([{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 1 and client.usage.retries == 0


async def test_litellms_own_error_wrapped_as_a_connection_error_fails_at_once_and_a_network_error_is_retried(
        sim_server, monkeypatch):
    """litellm wraps an error of its own code in its catch-all APIConnectionError, as it wraps a refused
    connection: the first is not retried (no wait cures it), the second is."""
    from raygrad.llm.client import LLMCallFailed

    server = sim_server(responder="echo")
    client = LLMClient(server.model_config(retry_deadline_s=60, transport="litellm"))
    real = litellm.acompletion

    def wrapped(cause: BaseException):
        async def acompletion(**kwargs):
            try:
                raise cause
            except Exception as err:  # noqa: BLE001 - as litellm's exception_type() does, in its own except block
                raise litellm.APIConnectionError(message=f"OpenAIException - {err}", llm_provider="openai",
                                                 model="simulated")
        return acompletion

    monkeypatch.setattr(litellm, "acompletion", wrapped(AttributeError("'NoneType' has no attribute 'get'")))
    started = time.monotonic()
    with pytest.raises(LLMCallFailed, match="litellm failed in its own code.*AttributeError"):
        await client.complete([{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 1 and client.usage.retries == 0

    calls = []
    network = wrapped(ConnectionResetError("Connection reset by peer"))

    async def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            return await network(**kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", flaky)
    assert (await client.complete([{"role": "user", "content": "hello"}])).text == "hello"
    assert client.usage.retries == 1


async def test_a_reply_with_no_answer_is_retried_a_few_times_then_fails_the_call_with_the_reason(sim_server):
    """A 200 with content null (a content filter) or no choices at all: the provider's fault, so retried; the
    same filter meets the same request again, so after a few replies the call fails, saying why."""
    from raygrad.llm.client import NO_ANSWER_TRIES, LLMCallFailed

    server = sim_server(responder="echo", empty_rate=1.0)
    client = LLMClient(server.model_config())
    with pytest.raises(LLMCallFailed, match=r"no (content|choices).*\(3 replies in a row\)"):
        await client.complete([{"role": "user", "content": "hi"}])
    assert len(server.log) == NO_ANSWER_TRIES == 3 and client.usage.failed_calls == 1
    some = sim_server(responder="echo", empty_rate=0.5, seed=1)
    client = LLMClient(some.model_config())
    assert (await client.complete([{"role": "user", "content": "hello"}])).text == "hello"
    assert [e.fault for e in some.log] == ["empty", None] and client.usage.retries == 1


async def test_a_refused_key_stops_at_once_naming_the_model_and_its_variable(sim_server, monkeypatch):
    from raygrad.errors import ConfigError

    server = sim_server(responder="echo", api_key="sk-right-key")
    monkeypatch.setenv("SIMULATED_KEY", "sk-wrong-key")
    client = LLMClient(server.model_config(api_key_env="SIMULATED_KEY"))
    with pytest.raises(ConfigError, match="openai/simulated refused the key in SIMULATED_KEY: AuthenticationError"):
        await client.complete([{"role": "user", "content": "hi"}])
    assert len(server.log) == 1 and server.log[0].status == 401  # no retry: no wait cures a wrong key
    monkeypatch.setenv("SIMULATED_KEY", "sk-right-key")
    assert (await LLMClient(server.model_config(api_key_env="SIMULATED_KEY")).complete(
        [{"role": "user", "content": "hi"}])).text == "hi"
