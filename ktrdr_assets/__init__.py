"""ktrdr_assets: market bars to trained, checked and selected trading-signal models, per symbol."""
