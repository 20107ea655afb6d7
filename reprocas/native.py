"""The native core, imported once, with a warning when it is a slow debug build."""

from __future__ import annotations

import warnings

from reprocas import _core

if not _core.is_release_build():  # pragma: no cover - depends on how it was built
    warnings.warn(
        "reprocas._core is a debug build and runs many times slower; "
        "rebuild it with `make build` (maturin --release)",
        RuntimeWarning,
        stacklevel=2,
    )

core = _core

__all__ = ["core"]
