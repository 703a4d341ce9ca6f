"""The Poe side: the HTTP client, SSE parsing, typed events, events to neutral deltas (the
pipeline's source), query building, upstream errors, the model catalogue and bot parameters."""
