"""labflow."""
