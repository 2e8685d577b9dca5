"""TeachTape's Zoom session logs service."""
