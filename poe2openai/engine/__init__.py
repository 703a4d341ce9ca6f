"""The call engine and what it shares across requests: one call from a neutral request to
the last byte for any dialect, the gateway's state and model routing (``models.yaml``), the
rate limit, per-request facts for the log, and small HTTP helpers."""
