"""The HTTP service, its settings, micro-batching engine, image codec and CLI."""
