"""The LLM layer: one async client (client.py) sending through litellm or the OpenAI SDK (transport.py),
endpoint configs (models.py), rate limits (limits.py) and the cluster-wide budget ledger's algorithm
(ledger.py), the call journal (journal.py), role clients per endpoint (endpoints.py), and the embedded
local model (local.py).

Imports only raygrad.errors; never Ray (the RateBudget actor wraps ledger.py from distributed/).
"""
from __future__ import annotations

import os
from types import ModuleType


def import_litellm() -> ModuleType:
    """Import litellm for offline use: its bundled price map, no network fetch, no debug banners."""
    # Without this, litellm fetches its price map from the network at first use and stalls offline.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm
