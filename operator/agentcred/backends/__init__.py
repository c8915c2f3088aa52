"""One module per credential backend behind a small Protocol; SDK imports stay inside."""
