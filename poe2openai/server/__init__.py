"""The aiohttp application (routes, middlewares, headers every response carries, CORS) and
running it (listen, signals, graceful shutdown)."""
