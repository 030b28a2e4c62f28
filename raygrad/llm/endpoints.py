"""Clients for the roles of a run (task, backward, optimizer), with one limiter per endpoint."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from raygrad.llm.client import LLMClient, Usage
from raygrad.llm.journal import Journal
from raygrad.llm.limits import EndpointLimiter, LeasedWindow
from raygrad.llm.local import LOCAL_ENDPOINT_ID, LocalModelServer
from raygrad.llm.models import ModelConfig


def endpoint_id(model: ModelConfig) -> str:
    """The identity of an endpoint: what its rate budget and its journal keys are per."""
    return f"{model.model}@{model.api_base or 'default'}"


@contextmanager
def resolved_models(models: Mapping[str, ModelConfig], local: LocalModelServer | None = None
                    ) -> Iterator[tuple[dict[str, ModelConfig], dict[str, str]]]:
    """Per role: the endpoint's config (the local model started, unless `local` is given, and pointed
    at) and its endpoint id. Every API key variable is checked first, before anything starts or any
    call is made.
    """
    for model in models.values():
        model.api_key()  # raises ConfigError naming a missing variable
    with ExitStack() as stack:
        resolved, endpoints = {}, {}
        for role, model in models.items():
            if model.is_local:
                if local is None:
                    local = stack.enter_context(LocalModelServer())
                resolved[role], endpoints[role] = local.model_config(model), LOCAL_ENDPOINT_ID
            else:
                resolved[role], endpoints[role] = model, endpoint_id(model)
        yield resolved, endpoints


class RoleClients(Mapping[str, LLMClient]):
    """One LLMClient per role or named model, made on first use in this process and event loop (clients
    hold connections and locks, so they never travel); names on the same endpoint share one limiter.

    `shared(endpoint)`, if given, returns the cluster-wide lease a limited endpoint paces by.
    """

    def __init__(self, models: Mapping[str, ModelConfig], endpoints: Mapping[str, str], journal_path: str | Path,
                 shared: Callable[[str], LeasedWindow] | None = None):
        self.models, self.endpoints, self.journal_path, self.shared = models, endpoints, journal_path, shared
        self._clients: dict[str, LLMClient] = {}
        self._limiters: dict[str, EndpointLimiter] = {}
        self._journal: Journal | None = None
        self._reported: dict[str, Usage] = {}

    def __getitem__(self, role: str) -> LLMClient:
        if role not in self.models:
            raise KeyError(role)
        if role not in self._clients:
            if self._journal is None:
                self._journal = Journal(self.journal_path)
            model, endpoint = self.models[role], self.endpoints[role]
            if endpoint not in self._limiters:
                lease = self.shared(endpoint) if self.shared is not None and (model.rpm or model.tpm) else None
                self._limiters[endpoint] = EndpointLimiter(model.rpm, model.tpm, model.max_in_flight, lease)
            self._clients[role] = LLMClient(model, journal=self._journal, endpoint_id=endpoint,
                                            limiter=self._limiters[endpoint], role=role)
        return self._clients[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def usage_delta(self) -> dict[str, Usage]:
        """Usage since the last call, per role: a receiver that sums deltas loses none to a restart."""
        delta = {}
        for role, client in self._clients.items():
            before = self._reported.get(role, Usage())
            delta[role] = client.usage.since(before)
            self._reported[role] = client.usage.model_copy()
        return delta

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


@contextmanager
def role_clients(models: Mapping[str, ModelConfig], journal_path: str | Path,
                 local: LocalModelServer | None = None) -> Iterator[dict[str, LLMClient]]:
    """One client per role; roles on the same endpoint share its limits. Starts the local model if needed.

    Every API key variable is checked before any call is made.
    """
    with resolved_models(models, local) as (resolved, endpoints):
        clients = RoleClients(resolved, endpoints, journal_path)
        try:
            yield {role: clients[role] for role in resolved}
        finally:
            clients.close()
