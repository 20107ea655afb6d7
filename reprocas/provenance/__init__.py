"""Runs and provenance: record what produced a result, link it into a graph, explain
why two runs differ, and replay a run to a verdict (docs/RUNS.md)."""
