"""What we call at Zoom: the REST client (Server-to-Server OAuth)."""
