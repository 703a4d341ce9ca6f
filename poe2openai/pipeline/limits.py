"""Temporary pass-through limit stages."""

from __future__ import annotations

from poe2openai.pipeline.deltas import Delta


class MaxTokens:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def feed(self, batch: list[Delta]) -> list[Delta]:
        return batch


class StopSequences:
    def __init__(self, stops: list[str]) -> None:
        self.stops = stops

    def feed(self, batch: list[Delta]) -> list[Delta]:
        return batch
