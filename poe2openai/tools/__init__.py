"""Tool calling for bots that only write text: the instruction prompt and history rendering,
the streaming XML call extractor, and argument repair against the tool's schema."""
