"""Reading raw bar files as people have them (used by `core/data/bars.py`, the first stage): file kinds,
column roles, number formats, time stamps, per-file options from sources.yaml, one-line errors."""
