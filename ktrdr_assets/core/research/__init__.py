"""Tools for people tuning the models: experiment grids, hyper-parameter search, LLM-ready reports."""
