"""Retrieval-augmented generation with the trainable task text in a user template: a port of AdalFlow's VanillaRAG."""
