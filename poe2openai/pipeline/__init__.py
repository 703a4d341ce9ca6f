"""The response pipeline, sans-IO: neutral deltas, the stages that rewrite them (thinking
split, stop sequences, max_tokens, stream reset replay, usage), token counting, and the one
driver that runs a source and its stages read by read. Nothing here knows a wire format."""
