"""Email extraction with typed outputs: a port of DSPy's email information extraction tutorial."""
