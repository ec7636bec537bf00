"""Run outputs: the run folder, summary.json, latency.hlog, timeseries.csv."""
