"""Typed configuration: the strategy file's schema and loader, per-model config, errors."""
