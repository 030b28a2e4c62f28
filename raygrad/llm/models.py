"""The configuration of one LLM endpoint (ModelConfig), and the roles a run's models play."""
from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from raygrad.errors import ConfigError

ROLES = ("task", "backward", "optimizer")


def role_of(model_name: str) -> str:
    """The role a model's calls count under: its own if it is a role; a model an LLMCall names does task calls."""
    return model_name if model_name in ROLES else "task"


class Strict(BaseModel):
    """A config section: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ModelConfig(Strict):
    """One LLM endpoint for one role. `model=None` means the embedded local model."""

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    rpm: float | None = Field(None, gt=0, description="requests per minute allowed by the provider")
    tpm: float | None = Field(None, gt=0, description="tokens per minute allowed by the provider")
    max_in_flight: int = Field(32, ge=1)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    timeout_s: float = Field(60.0, gt=0, description="one HTTP attempt")
    retry_deadline_s: float = Field(300.0, gt=0, description="give up retrying a call after this long")
    extra: dict[str, Any] = Field(default_factory=dict, description="further litellm sampling params")
    input_cost_per_token: float | None = Field(None, ge=0, description="price for models litellm has no price for")
    output_cost_per_token: float | None = Field(None, ge=0)
    transport: Literal["auto", "litellm", "openai"] = Field(
        "auto", description="how requests are sent: litellm (every provider it knows), or the OpenAI SDK to an "
                            "OpenAI-compatible server (a third of litellm's CPU per call); auto: the SDK for an "
                            "openai/ model with an api_base, litellm for the rest")
    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = Field(
        "auto", description="how to ask for JSON: OpenAI's json_schema, json_object with a schema (llama.cpp, some "
                            "OpenAI-compatible servers), or in the prompt (no structured output); auto: json_schema, "
                            "or the prompt for a model litellm knows to lack it. Replies are validated either way")

    @field_validator("model")
    @classmethod
    def _known_provider(cls, model: str | None) -> str | None:
        if model is None or model.startswith("openai/"):  # litellm knows that provider; no need to import it
            return model
        from raygrad.llm import import_litellm  # deferred: litellm is slow to import

        litellm = import_litellm()
        try:
            litellm.get_llm_provider(model)
        except Exception as err:  # litellm raises BadRequestError with a long text
            raise ValueError(f"litellm does not know the provider of {model!r}; "
                             "write it as 'provider/model', e.g. 'openai/gpt-4o-mini'") from err
        return model

    @property
    def is_local(self) -> bool:
        return self.model is None

    def api_key(self) -> str | None:
        """The key, read from the environment at call time; never stored."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ConfigError(f"environment variable {self.api_key_env} (api_key_env) is not set")
        return value

    def sampling_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.temperature}
        for name in ("max_tokens", "top_p", "seed"):
            if getattr(self, name) is not None:
                params[name] = getattr(self, name)
        params.update(self.extra)
        return params

    def pricing(self) -> dict[str, float]:
        """Custom prices for litellm's cost calculation; not sampling, so kept out of journal keys."""
        return {name: getattr(self, name) for name in ("input_cost_per_token", "output_cost_per_token")
                if getattr(self, name) is not None}
