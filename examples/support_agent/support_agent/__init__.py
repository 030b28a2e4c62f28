"""A customer-support agent with native tool calls: a port of DSPy's customer service agent tutorial."""
