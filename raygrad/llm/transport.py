"""How one request reaches its endpoint, and what comes back: the reply, the provider's headers, the price.

Two transports speak to providers:

LiteLLMTransport   every provider litellm knows, through `litellm.acompletion`
OpenAITransport    an OpenAI-compatible server (`openai/<model>` with an `api_base`: vLLM, llama.cpp, a
                   gateway) through the OpenAI SDK's client that litellm itself uses, the body posted
                   as it is. litellm's own request and reply handling (a thread hop per call, its
                   logging, its cost calculation) costs about three times the SDK's CPU per call
                   (benchmarks/results/ray_overhead.md), and on a self-hosted endpoint that CPU, not
                   the provider, bounds a run's speed.

Both raise the OpenAI SDK's errors (litellm's derive from them) and give the same `Reply`, so the client's
retries, limits and journal do not know which one ran. Both read prices and structured-output support from
litellm's price map; the SDK's path reads the map's file without importing litellm, which costs a process
3 s of CPU and 140 MB.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from raygrad.errors import ConfigError
from raygrad.llm import import_litellm
from raygrad.llm.models import ModelConfig

ApiKey = Callable[[], "str | None"]  # read from the environment when needed, never stored in a config


class Reply(NamedTuple):
    response: Any  # a chat completion in OpenAI's shape: .choices[0].message, .usage
    headers: Mapping[str, str]  # the provider's, for its rate-limit state
    cost: float | None  # None: the price is unknown (not free)


class ModelFacts(NamedTuple):
    """What litellm's price map says of a model it knows."""

    prices: tuple[float, float]  # (input, output) dollars per token; litellm counts a missing price as 0
    takes_json_schema: bool

    @classmethod
    def of(cls, entry: Mapping[str, Any], takes_json_schema: bool) -> ModelFacts:
        """From a price-map entry (or litellm's model info, which has the same fields)."""
        return cls((entry.get("input_cost_per_token") or 0.0, entry.get("output_cost_per_token") or 0.0),
                   bool(takes_json_schema))


def uses_openai_sdk(config: ModelConfig) -> bool:
    """`transport: auto` sends through the OpenAI SDK an `openai/` model whose `api_base` is set: for such a
    server litellm passes the request through that SDK, and adds only its own cost."""
    if config.transport != "auto":
        return config.transport == "openai"
    return bool(config.api_base) and (config.model or "").startswith("openai/")


class LiteLLMTransport:
    name = "litellm"

    def __init__(self, config: ModelConfig, api_key: ApiKey):
        self.config, self._litellm, self._api_key = config, import_litellm(), api_key

    async def send(self, messages: list[dict], sampling: dict[str, Any]) -> Reply:
        cfg = self.config
        response = await self._litellm.acompletion(
            model=cfg.model, messages=messages, api_base=cfg.api_base, api_key=self._api_key(), timeout=cfg.timeout_s,
            num_retries=0, max_retries=0, **cfg.pricing(), **sampling)
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        return Reply(response, hidden.get("additional_headers") or {}, float(cost) if cost else None)

    async def warm_up(self) -> None:
        """A process's first litellm call spends about 0.4 s setting litellm up after its send time, so it
        reaches a rate-limited provider late, bunched with the next ones (refusals on a cold start). A mock
        reply (no network, no budget) spends that time before the first send time is taken."""
        try:
            await self._litellm.acompletion(model=self.config.model, messages=[{"role": "user", "content": "."}],
                                            mock_response=".")
        except Exception:  # noqa: BLE001 - a warm-up only saves time; the real call reports real errors
            pass

    def model_facts(self) -> ModelFacts | None:
        """None for a model litellm does not know (a self-hosted one)."""
        try:
            info = self._litellm.get_model_info(self.config.model)
        except Exception:  # noqa: BLE001 - litellm raises several kinds for a model it does not know
            return None
        return ModelFacts.of(info, self._litellm.supports_response_schema(model=self.config.model))


class OpenAITransport:
    """The SDK's client is made at the warm-up or the first send, with the key read then."""

    name = "the OpenAI SDK"

    def __init__(self, config: ModelConfig, api_key: ApiKey):
        self.config, self._api_key = config, api_key
        self._model = config.model.split("/", 1)[1] if config.model.startswith("openai/") else config.model
        self._prices = token_prices(config, self.model_facts())
        self._client: Any = None
        self._http_response: Any = None  # httpx's Response: `post` then hands back the reply with its headers
        self._chat_completion: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            import httpx
            import openai
            from openai.types.chat import ChatCompletion

            key = self._api_key() or os.environ.get("OPENAI_API_KEY")  # none set: OpenAI's usual variable
            if not key:
                raise ConfigError(f"{self.config.model}: no key; set api_key_env, or OPENAI_API_KEY")
            # A Timeout, not a float: the SDK builds each request's from the client's, and from a float that
            # costs a runtime Protocol check (typing.SupportsFloat), 30 us a call.
            # Its HTTP client made here, with the SDK's defaults: the one the SDK makes for itself closes itself
            # when collected, on whatever loop then runs, and a client left by an ended loop (one asyncio.run
            # after another) printed "Event loop is closed" tracebacks. Unclosed, its sockets go with it.
            self._client = openai.AsyncOpenAI(base_url=self.config.api_base, api_key=key, max_retries=0,
                                              timeout=openai.Timeout(self.config.timeout_s),
                                              http_client=openai.DefaultAsyncHttpxClient())
            self._http_response, self._chat_completion = httpx.Response, ChatCompletion
        return self._client

    async def send(self, messages: list[dict], sampling: dict[str, Any]) -> Reply:
        # The body goes through the SDK's client as it is (its documented `post` for any route). Its
        # `chat.completions.create` first walks the body against its typed parameters, 0.4 ms of CPU a call,
        # a quarter of all a call costs, and that walk changes nothing in raygrad's plain-JSON bodies (a test
        # compares the two on the wire). Sampling settings are the body's own fields, as litellm sends them.
        raw = await self._sdk().post("/chat/completions", cast_to=self._http_response,
                                     body={"model": self._model, "messages": messages, **sampling},
                                     options={"security": {"bearer_auth": True}})
        try:
            data = raw.json()
        except ValueError as err:  # a body cut short or garbled: the network's fault, retried as litellm does
            data = err
        if not isinstance(data, dict) or "choices" not in data:  # a broken JSON body, or text where JSON was due
            import openai

            raise openai.APIResponseValidationError(raw, None, message=f"unreadable reply: {data}")
        # The SDK's own lenient reading of a reply (what `create` returns): nested objects, unknown fields kept.
        response = self._chat_completion.construct(**data)
        return Reply(response, raw.headers, self._cost(getattr(response, "usage", None)))

    def _cost(self, usage: Any) -> float | None:
        if self._prices is None or usage is None:
            return None
        cost = (usage.prompt_tokens or 0) * self._prices[0] + (usage.completion_tokens or 0) * self._prices[1]
        return cost or None

    async def warm_up(self) -> None:
        """Making the SDK's client takes about 0.15 s: made at the first send, it would delay that request
        into the next one's place at a rate-limited provider."""
        try:
            self._sdk()
        except ConfigError:  # a key variable not set: the first send reports it
            pass

    def model_facts(self) -> ModelFacts | None:
        """As litellm's get_model_info finds an `openai/<name>` (checked against it in the tests): the map's
        entry for the whole name or for <name>, if that is an OpenAI model, its alias followed."""
        price_map = bundled_price_map()
        name = self.config.model.split("/", 1)[-1]
        for key in (self.config.model, name):
            entry = price_map.get(key) or {}
            entry = price_map.get(entry.get("alias_of"), entry)
            if entry.get("litellm_provider") == "openai":
                return ModelFacts.of(entry, entry.get("supports_response_schema"))
        return None


@functools.cache  # a file of the installed package: read once per process
def bundled_price_map() -> dict[str, dict[str, Any]]:
    """litellm's own copy of its price map, the one raygrad has litellm use (LITELLM_LOCAL_MODEL_COST_MAP)."""
    spec = importlib.util.find_spec("litellm")  # finds the package without running it
    folder = next(iter(spec.submodule_search_locations or [])) if spec else None
    if folder is None:
        return {}
    with open(os.path.join(folder, "model_prices_and_context_window_backup.json"), encoding="utf-8") as file:
        return json.load(file)


def token_prices(config: ModelConfig, facts: ModelFacts | None) -> tuple[float, float] | None:
    """(input, output) dollars per token: the config's own, else the price map's; None when neither knows them."""
    if config.input_cost_per_token is not None or config.output_cost_per_token is not None:
        return config.input_cost_per_token or 0.0, config.output_cost_per_token or 0.0
    return None if facts is None else facts.prices


def import_transports(models: Iterable[ModelConfig]) -> None:
    """Import what these models are sent through when a process starts, not within its first call (litellm
    takes 3 s, the SDK 0.5 s): a Ray worker is then ready to send when it is up."""
    for config in models:
        if uses_openai_sdk(config):
            import openai  # noqa: F401
        else:
            import_litellm()


def transport_for(config: ModelConfig, api_key: ApiKey) -> LiteLLMTransport | OpenAITransport:
    """litellm is imported only when its transport is used."""
    kind = OpenAITransport if uses_openai_sdk(config) else LiteLLMTransport
    return kind(config, api_key)
