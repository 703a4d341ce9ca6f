"""Benchmarks: the gateway beside a bare aiohttp relay and LiteLLM on the same stream."""
