"""The HTTP service: the app factory, middleware, error mapping, authentication, the service state and the
routes, and `srgan serve` (uvicorn)."""
