"""Clients for the roles of a run (task, backward, optimizer), with one limiter per endpoint."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from raygrad.config import ROLES, ModelConfig, RunConfig
from raygrad.llm.client import LLMClient
from raygrad.llm.journal import Journal
from raygrad.llm.limits import EndpointLimiter
from raygrad.llm.local import LOCAL_ENDPOINT_ID, LocalModelServer


@contextmanager
def resolved_models(config: RunConfig, roles: tuple[str, ...] = ROLES, local: LocalModelServer | None = None
                    ) -> Iterator[tuple[dict[str, ModelConfig], dict[str, str]]]:
    """Per role: the endpoint's config (the local model started, unless `local` is given, and pointed
    at) and its endpoint id. Every API key variable is checked first, before anything starts or any
    call is made.
    """
    for role in roles:
        config.model_for(role).api_key()  # raises ConfigError naming a missing variable
    with ExitStack() as stack:
        models, endpoints = {}, {}
        for role in roles:
            model_config, endpoint_id = config.model_for(role), None
            if model_config.is_local:
                if local is None:
                    local = stack.enter_context(LocalModelServer())
                model_config, endpoint_id = local.model_config(model_config), LOCAL_ENDPOINT_ID
            models[role] = model_config
            endpoints[role] = endpoint_id or f"{model_config.model}@{model_config.api_base or 'default'}"
        yield models, endpoints


@contextmanager
def role_clients(config: RunConfig, roles: tuple[str, ...] = ROLES) -> Iterator[dict[str, LLMClient]]:
    """One client per role; roles on the same endpoint share its limits. Starts the local model if needed.

    Every API key variable is checked before any call is made.
    """
    limiters: dict[str, EndpointLimiter] = {}
    clients: dict[str, LLMClient] = {}
    with resolved_models(config, roles) as (models, endpoints), ExitStack() as stack:
        journal = Journal(config.journal_path)
        for role in roles:
            model_config, endpoint = models[role], endpoints[role]
            if endpoint not in limiters:
                limiters[endpoint] = EndpointLimiter(model_config.rpm, model_config.tpm, model_config.max_in_flight)
            clients[role] = LLMClient(model_config, journal=journal, endpoint_id=endpoint, limiter=limiters[endpoint],
                                      role=role)
        stack.callback(journal.close)
        yield clients
