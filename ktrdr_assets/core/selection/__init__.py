"""After training: gates, candidates, decision thresholds, the selector and manifest, the backtest."""
