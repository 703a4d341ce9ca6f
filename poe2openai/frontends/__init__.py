"""API dialects on the call engine: each is a request parser, a stream encoder, an aggregate,
an error renderer and its routes."""
