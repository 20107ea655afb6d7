"""Which environment variables an environment snapshot may keep, and scrubbing secrets.

Nothing outside the allowlist is stored. A name that looks like a secret (it contains
TOKEN, KEY, SECRET, PASSWORD, PASSWD, CREDENTIAL, AUTH or PRIVATE, in any case) is
never stored, even when a pattern allows it: clinical projects must not leak
credentials into their provenance. Credentials embedded in URLs (``https://user:pw@``)
are replaced by ``***`` wherever a snapshot records a URL or a text file.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping

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

SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|PRIVATE", re.I)

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]+)@")


def looks_secret(name: str) -> bool:
    """Whether a variable name looks like it holds a credential."""
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


def select(environ: Mapping[str, str], allow: Iterable[str]) -> dict[str, str]:
    """The allowed variables of ``environ``, values scrubbed of URL credentials."""
    allow = tuple(allow)
    return {k: redact_urls(v) for k, v in sorted(environ.items()) if allowed(k, allow)}


def redact_urls(text: str) -> str:
    """Replace credentials in URLs: any ``user:password@``, and any user or token in an
    http(s) URL. ``git@host`` style ssh users are kept."""

    def sub(m: re.Match[str]) -> str:
        scheme, info = m.group("scheme"), m.group("info")
        if ":" in info or scheme.lower().startswith("http"):
            return scheme + "***@"
        return m.group(0)

    return _URL_USERINFO.sub(sub, text)


_URL_USERINFO_B = re.compile(rb"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]+)@")


def redact_bytes(data: bytes) -> tuple[bytes, bool]:
    """:func:`redact_urls` over bytes (a lock file, a patch; invalid UTF-8 is fine).
    The flag says whether anything was replaced. Git's base85 binary hunks never hold
    ``://``, so a patch stays applicable."""

    def sub(m: re.Match[bytes]) -> bytes:
        scheme, info = m.group("scheme"), m.group("info")
        if b":" in info or scheme.lower().startswith(b"http"):
            return scheme + b"***@"
        return m.group(0)

    scrubbed = _URL_USERINFO_B.sub(sub, data)
    return scrubbed, scrubbed != data
