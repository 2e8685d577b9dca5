"""Development tools (embedded PostgreSQL, simulator): not part of the service or its image."""
