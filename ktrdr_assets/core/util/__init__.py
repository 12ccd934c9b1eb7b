"""Small shared utilities: atomic writes, JSON safety, plots."""
