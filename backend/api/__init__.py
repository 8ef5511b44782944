"""HTTP API v1: one module per resource, errors and the OpenAPI document beside them."""
