"""What Zoom calls: the webhook route, its signature, event parsing and group commit."""
