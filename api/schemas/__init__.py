"""Request and response bodies, one module per resource, each with OpenAPI examples."""
