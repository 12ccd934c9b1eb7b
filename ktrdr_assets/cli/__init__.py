"""Command-line tools: ktrdr-run, ktrdr-monitor, ktrdr-analyze."""
