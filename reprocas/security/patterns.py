"""The secret patterns: well-known token formats, PEM private keys, and literal values
assigned to names that say they hold a secret.

A well-known format (``AKIA…``, ``ghp_…``, ``xoxb-…``) is a secret wherever it appears.
An assignment (``API_KEY = '…'``, ``password: …``, ``"token": "…"``) is one only when
the name ends in a secret word *and* the value looks like a secret: a literal (not an
expression, a reference or a placeholder), at least 8 characters, not a path, not an
identifier-like run of words, and random enough. Ordinary code (``key = row["id"]``,
``session = requests.Session()``, ``cache_key = "model_weights"``) is left alone; the
false-positive corpus in ``tests/unit/test_secrets.py`` holds the line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
"""The first line of a PEM (or PGP armoured) private key."""

PRIVATE_KEY = re.compile(
    PRIVATE_KEY_BEGIN.pattern
    + r"(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
"""A whole private key block; an unterminated block runs to the end of the text (the
safe reading of a truncated key)."""


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class Rule:
    """A well-known token format: the match (or its ``secret`` group) is the secret,
    unless the character before it is in ``inside`` (then it is part of a longer
    token). The regexes start with their literal prefix, which keeps them fast; the
    character before is checked by :meth:`starts_token`, not by a look-behind."""

    kind: str
    regex: re.Pattern[str]
    inside: frozenset[str] = _TOKEN_CHARS

    def starts_token(self, text: str, start: int) -> bool:
        return start == 0 or text[start - 1] not in self.inside


_E = r"(?![A-Za-z0-9_\-])"  # not followed by more token characters

RULES: tuple[Rule, ...] = (
    Rule(
        "aws-access-key",
        re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
        frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    ),
    Rule(
        "aws-secret-key",
        # 40 base64 characters assigned to something named like AWS's secret key.
        re.compile(
            r"(?i:aws.{0,24}?(?:secret|sk)[\w\-]{0,24}?[\"']?\s*(?::|=|=>)\s*[\"']?)"
            r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"),
    ),
    Rule("google-api-key", re.compile(r"AIza[0-9A-Za-z_\-]{35}" + _E)),
    Rule("github-token", re.compile(r"gh[pousr]_[A-Za-z0-9]{36,255}" + _E)),
    Rule("github-token", re.compile(r"github_pat_[A-Za-z0-9_]{22,255}" + _E)),
    Rule("slack-token", re.compile(r"xox[baprs]-[A-Za-z0-9\-]{10,250}" + _E)),
    Rule(
        "slack-webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/\w{16,}"),
        frozenset(),
    ),
    Rule("huggingface-token", re.compile(r"hf_[A-Za-z0-9]{34,40}" + _E)),
    Rule("stripe-key", re.compile(r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}" + _E)),
    # OpenAI-style keys (sk-..., sk-proj-...): long, and holding a digit, which a
    # hyphenated word (sk-learn-style names) does not.
    Rule("openai-key", re.compile(r"sk-(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{20,250}" + _E)),
    Rule("jwt", re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*" + _E)),
)

SECRET_WORDS: tuple[str, ...] = (
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "salt",
    "cookie",
    "session",
    "credential",
)
"""A name whose last word ends in one of these (``API_KEY``, ``authToken``,
``db_password``, ``credentials``) may hold a secret."""

PASSWORD_WORDS: tuple[str, ...] = ("password", "passwd", "pwd")
"""Names whose literal values are secrets even when they read like words."""

_SUFFIXES = frozenset({"value", "b64", "base64", "hex", "str", "string", "raw", "plain", "pem"})
"""A last word that only says how the secret is encoded (``secret_key_b64``)."""

# NAME (maybe quoted, bracketed, a --flag or an attribute), a separator, a value: a
# quoted string (quotes may be backslash-escaped, as inside JSON) or a bare word.
ASSIGNMENT = re.compile(
    r"""
    (?<![\w.\-])-{0,2}
    (?P<name>[A-Za-z_][\w.\-]*)
    [\"'\]]{0,3}
    (?:
        [ \t]*:[ \t]*[A-Za-z_][\w\[\]., |]*?[ \t]*=(?!=)   # a Python annotation: name: str =
      | [ \t]*(?::=|=>|=(?!=)|:(?!:))
    )
    [ \t]*
    (?:
        (?P<q>\\?[\"'`])(?P<quoted>[^\n\"'`\\]*)(?P=q)
      | (?P<bare>[^\s\"'`,;]+)
    )
    """,
    re.X,
)

_SECRET_WORD = re.compile("|".join(SECRET_WORDS))
_SECRET_WORD_I = re.compile("|".join(SECRET_WORDS), re.I)


def secret_words(text: str) -> Iterator[re.Match[str]]:
    """Every secret word in ``text``, any case: the fast filter before
    :data:`ASSIGNMENT` (a line without one assigns no secret name). ASCII text is
    searched lower-cased, which is many times faster than an ignore-case search."""
    if text.isascii():
        return _SECRET_WORD.finditer(text.lower())
    return _SECRET_WORD_I.finditer(text)


CODE_SUFFIXES = frozenset(
    {
        ".py",
        ".pyi",
        ".pyx",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".java",
        ".kt",
        ".scala",
        ".go",
        ".rs",
        ".rb",
        ".php",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".hpp",
        ".cs",
        ".swift",
        ".r",
        ".jl",
        ".m",
        ".lua",
        ".pl",
    }
)
"""In source code a bare word after ``=`` is an expression (``token = None``,
``password = getpass()``), so only quoted values count there. In ``.env``, ini, yaml,
shell and everything else a bare word is the value itself."""

_PLACEHOLDER = re.compile(
    r"your|example|change[_\-]?me|placeholder|dummy|redacted|xxx|\*\*\*|\.\.\.|…|todo|fixme"
    r"|^<.*>$|\$\{|\{\{|%\(|^\$\w+$|^%\w+%$|«",
    re.I,
)
_PATH_START = re.compile(r"^(?:/|\./|\.\./|~/|[A-Za-z]:[\\/])")
_WORD_CHUNKS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_WORDY_PART = re.compile(r"[0-9]{1,10}|(?:[A-Z]?[a-z]+|[A-Z]+)*(?:[0-9]{1,4}[A-Za-z]{0,2})*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def name_words(name: str) -> list[str]:
    """The lower-case words of an identifier: ``apiKey`` and ``API_KEY`` -> api, key."""
    last = name.rsplit(".", 1)[-1]  # self.api_key, settings.SECRET_KEY
    return [w.lower() for w in re.split(r"[_\-\s]+", _CAMEL.sub("_", last)) if w]


def secret_name(name: str) -> str | None:
    """The secret word ``name`` ends in (``key`` for ``API_KEY``), or None."""
    words = name_words(name)
    if len(words) > 1 and words[-1] in _SUFFIXES:
        words = words[:-1]
    if not words:
        return None
    last = words[-1]
    last = last[:-1] if last.endswith("s") and len(last) > 3 else last
    for w in SECRET_WORDS:
        if last.endswith(w):
            return w
    return None


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _char_classes(text: str) -> int:
    return sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
            any(not c.isalnum() for c in text),
        )
    )


def wordy(text: str) -> bool:
    """Whether ``text`` reads like an identifier made of words and small numbers
    (``model_weights_cache``, ``train2017``, ``ResNet50_v2``) rather than random
    characters: each part between separators is a number, or words followed by small
    numbers with short suffixes (``imagenet1k``, ``1x1``); every longer word has a
    vowel."""
    if re.search(r"[^A-Za-z0-9_\-. :]", text):
        return False
    parts = [p for p in re.split(r"[_\-. :]+", text) if p]
    if not parts or not all(_WORDY_PART.fullmatch(p) for p in parts):
        return False
    chunks = _WORD_CHUNKS.findall(text)
    # Random characters change class every one or two characters; words do not (a
    # separator between short parts, as in Conv2d_1x1_3, allows shorter chunks).
    shortest = 1.25 if len(parts) > 1 else 2
    if len(chunks) > 8 or sum(map(len, chunks)) / len(chunks) < shortest:
        return False
    return all(c.isdigit() or len(c) <= 2 or (len(c) <= 12 and _VOWEL.search(c)) for c in chunks)


def path_like(text: str) -> bool:
    """Whether ``text`` reads like a file path: absolute or relative, or words (or
    plain names ending in a file extension) between slashes."""
    if _PATH_START.match(text):
        return True
    parts = re.split(r"[\\/]", text)
    if len(parts) < 2 or not all(parts):
        return False
    if re.search(r"\.[a-z0-9]{1,5}$", parts[-1]) and all(
        re.fullmatch(r"[\w.\-]+", p) for p in parts
    ):
        return True
    return all(wordy(p) for p in parts)


def placeholder(value: str) -> bool:
    """``<your-key>``, ``${TOKEN}``, ``changeme``, ``xxxxxxxx``, a redaction marker …"""
    return _PLACEHOLDER.search(value) is not None or len(set(value)) <= 2


def secret_value(value: str, word: str) -> bool:
    """Whether ``value``, assigned to a name ending in ``word``, looks like a secret."""
    if len(value) < 8 or len(value) > 4096:
        return False
    if any(c.isspace() for c in value) or "://" in value:
        return False
    low = value.lower()
    if low in SECRET_WORDS or low in {"none", "null", "true", "false", "undefined"}:
        return False
    if placeholder(value):
        return False
    if path_like(value):
        return False
    if any(ch in value for ch in "()[]{}"):
        return False  # an expression or a template, not a literal
    if word in PASSWORD_WORDS:
        return True  # a literal password is a secret even when it reads like words
    if value.isdigit() or wordy(value):
        return False
    return entropy(value) >= 3.0 or _char_classes(value) >= 3
