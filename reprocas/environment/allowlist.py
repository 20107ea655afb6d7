"""Which environment variables an environment snapshot may keep, and scrubbing secrets.

Nothing outside the allowlist is stored. A name that looks like a secret (it contains
TOKEN, KEY, SECRET, PASSWORD, PASSWD, PWD, CREDENTIAL, AUTH, PRIVATE, SALT, COOKIE or
SESSION, in any case; ``PWD`` and ``OLDPWD`` themselves are the shell's working
directories, not secrets) is never stored, even when a pattern allows it: clinical
projects must not leak credentials into their provenance. The values kept are scanned
for secrets too (:mod:`reprocas.security`): a token or a URL's credentials in an
allowed variable are redacted.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

from reprocas.security import Finding, redact_text

DEFAULT_ALLOW: tuple[str, ...] = (
    # Python itself
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONWARNINGS",
    "PYTHONDEVMODE",
    "PYTHONPATH",
    "PYTHONNOUSERSITE",
    "PYTHONSAFEPATH",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONDONTWRITEBYTECODE",
    # GPUs and CUDA
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_LAUNCH_BLOCKING",
    "CUDA_MODULE_LOADING",
    "CUDA_HOME",
    "CUDA_PATH",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDNN_*",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "NCCL_*",
    # threads and math libraries
    "OMP_*",
    "MKL_*",
    "OPENBLAS_*",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_*",
    "KMP_*",
    # frameworks: determinism and device selection
    "TF_DETERMINISTIC_OPS",
    "TF_CUDNN_DETERMINISTIC",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_XLA_FLAGS",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "XLA_FLAGS",
    "XLA_PYTHON_CLIENT_*",
    "JAX_*",
    "TORCH_DETERMINISTIC*",
    "TORCH_USE_CUDA_DSA",
    "TORCH_CUDNN_*",
    "TORCH_HOME",
    "PYTORCH_*",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    # locale and time
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "SOURCE_DATE_EPOCH",
)
"""Glob patterns (``fnmatch``, case-sensitive) of variables kept by default."""

ENV_VAR = "REPROCAS_ENV_ALLOW"
"""Extra allowlist patterns, comma-separated, added to the defaults."""

SECRET_NAME = re.compile(
    r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|PWD|CREDENTIAL|AUTH|PRIVATE|SALT|COOKIE|SESSION", re.I
)

NOT_SECRET = frozenset({"PWD", "OLDPWD"})
"""The shell's current and previous working directory: they contain PWD, hold a path."""


def looks_secret(name: str) -> bool:
    """Whether a variable name looks like it holds a credential."""
    if name.upper() in NOT_SECRET:
        return False
    return SECRET_NAME.search(name) is not None


def patterns(extra: Iterable[str] = (), *, defaults: bool = True) -> tuple[str, ...]:
    """The allowlist in force: the defaults, $REPROCAS_ENV_ALLOW, then ``extra``."""
    out: list[str] = list(DEFAULT_ALLOW) if defaults else []
    env = os.environ.get(ENV_VAR, "")
    out += [p.strip() for p in env.split(",") if p.strip()]
    out += [p.strip() for p in extra if p.strip()]
    return tuple(dict.fromkeys(out))


def allowed(name: str, allow: Iterable[str]) -> bool:
    """Whether ``name`` may be stored under the patterns ``allow`` (never a secret name)."""
    if looks_secret(name):
        return False
    return any(fnmatch.fnmatchcase(name, p) for p in allow)


def select(
    environ: Mapping[str, str], allow: Iterable[str], *, allow_secrets: bool = False
) -> tuple[dict[str, str], list[Finding]]:
    """The allowed variables of ``environ`` with secrets in their values redacted
    (kept when ``allow_secrets``), and the secrets found (``env:NAME``, line 0)."""
    allow = tuple(allow)
    out: dict[str, str] = {}
    findings: list[Finding] = []
    for k, v in sorted(environ.items()):
        if not allowed(k, allow):
            continue
        redacted, found = redact_text(v, f"env:{k}")
        findings += [Finding(f.path, 0, f.kind) for f in found]
        out[k] = v if allow_secrets else redacted
    return out, findings
