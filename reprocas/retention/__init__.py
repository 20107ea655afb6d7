"""Retention: decide which versions to keep (pure), forget the rest, prune their bytes.

* :mod:`reprocas.retention.policy` — ``apply_policy``: the pure decision;
* :mod:`reprocas.retention.budget` — the exact size of the store after pruning;
* :mod:`reprocas.retention.forget` — applying a decision to the refs;
* :mod:`reprocas.retention.prune` — ``plan_prune(...)`` then ``plan.execute()``;
* :mod:`reprocas.retention.config` — retention settings in the repository config.

docs/RETENTION.md describes the rules and why prune is safe beside running commits.
"""
