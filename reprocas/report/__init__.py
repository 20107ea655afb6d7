"""The provenance report: one self-contained HTML file (timeline, lineage, run
comparison) and a W3C PROV-JSON export (``reprocas report``)."""
