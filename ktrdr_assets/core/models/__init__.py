"""Model types: configs, builders, training and persistence for the four model assets."""
