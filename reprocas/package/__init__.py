"""Reproducible packages: a run with everything that produced it, as a BagIt bag whose
``data/`` is an RO-Crate (docs/PACKAGES.md)."""
