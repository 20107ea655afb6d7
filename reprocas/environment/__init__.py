"""Environment snapshots: capture exactly what a result ran on, see how it drifted,
rebuild it.

* :mod:`~reprocas.environment.capture` — the facts, read inside the target interpreter;
* :mod:`~reprocas.environment.allowlist` — which environment variables may be stored;
  secrets in what is stored are redacted by :mod:`reprocas.security`;
* :mod:`~reprocas.environment.store` — saving and loading snapshots in a repository;
* :mod:`~reprocas.environment.diff` — drift between two snapshots;
* :mod:`~reprocas.environment.export` — requirements file, Dockerfile, conda file;
* :mod:`~reprocas.environment.restore` — a new venv from a snapshot.

The format is described in docs/ENVIRONMENT.md and docs/FORMAT.md.
"""
