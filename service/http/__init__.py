"""HTTP plumbing: errors, auth, access log, metrics, health, OpenAPI and JSON helpers."""
