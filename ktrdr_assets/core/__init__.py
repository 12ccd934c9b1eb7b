"""The domain in plain Python, no Dagster: its folders read in the order data flows.

config -> data -> models (the registry) -> training -> selection; research and util beside them.
"""
