"""The HTTP API: one FastAPI app per process, built by `api.app.create_app`."""
