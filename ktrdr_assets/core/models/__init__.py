"""Model types: the registry (one `ModelSpec` per type, `registry.py`), one module per type, the surface
they share (`base.py`), and the training run that fits, evaluates and saves any of them."""
