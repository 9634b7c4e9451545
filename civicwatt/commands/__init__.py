"""One module per CLI verb, each with `run(args) -> int`."""
