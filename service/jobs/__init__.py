"""Jobs run from the command line: migrate and retention."""
