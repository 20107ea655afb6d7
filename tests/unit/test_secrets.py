"""Secret patterns: each kind is found and only the secret is replaced; a corpus of
ordinary code, configuration and lock files is left alone; git patches are redacted by
file and new-file line and still apply."""

from __future__ import annotations

import random
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reprocas.security import (
    Finding,
    marker,
    redact_bytes,
    redact_patch,
    redact_text,
    redact_urls,
    scan_text,
    secret_facts,
    warning,
)
from reprocas.security.patterns import entropy, path_like, placeholder, secret_name, wordy
from tests.integration._helpers import git

_RNG = random.Random(1313)
ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM, rng: random.Random = _RNG) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# Built at run time (never a literal token in the source), one per kind.
AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
AWS_SECRET = rand(40, ALNUM + "/+")
GOOGLE = "AIza" + rand(35, ALNUM + "_-")
GITHUB = "ghp_" + rand(36)
GITHUB_PAT = "github_pat_" + rand(60, ALNUM + "_")
SLACK = "xoxb-" + rand(12, string.digits) + "-" + rand(24)
STRIPE = "sk_live_" + rand(24)
HF = "hf_" + rand(34, string.ascii_letters)
OPENAI = "sk-live-" + rand(12) + "7" + rand(12)
JWT = "eyJ" + rand(20) + ".eyJ" + rand(30) + "." + rand(43, ALNUM + "_-")
GENERIC = rand(24)
PEM_BODY = [rand(64, ALNUM + "+/") for _ in range(3)]

KINDS: list[tuple[str, str, str, str]] = [
    # (path, line template with {s}, the secret, kind)
    ("train.py", "AWS_ACCESS_KEY_ID = '{s}'", AWS_ID, "aws-access-key"),
    ("aws.ini", "aws_secret_access_key = {s}", AWS_SECRET, "aws-secret-key"),
    ("app.js", "const cfg = {{ mapsKey: '{s}' }};", GOOGLE, "google-api-key"),
    ("ci.sh", "git clone https://x.invalid/r --token {s}", GITHUB, "github-token"),
    ("README.md", "use {s} to push", GITHUB_PAT, "github-token"),
    ("notify.py", "client = WebClient(token='{s}')", SLACK, "slack-token"),
    ("pay.py", 'stripe.api_key = "{s}"', STRIPE, "stripe-key"),
    ("hub.sh", "huggingface-cli login --token {s}", HF, "huggingface-token"),
    ("train.py", "API_KEY='{s}'", OPENAI, "openai-key"),
    ("req.http", "Cookie: jwt={s}; path=/", JWT, "jwt"),
    ("config.yaml", "  api_key: {s}", GENERIC, "assignment"),
    (".env", "export SESSION_SECRET={s}", GENERIC, "assignment"),
    ("settings.json", '{{"clientSecret": "{s}", "x": 1}}', GENERIC, "assignment"),
    ("settings.py", 'SECRET_KEY: str = "{s}"', GENERIC, "assignment"),
    ("db.py", 'connect(host="db", password="{s}")', "Tr0ub4dor&3x", "assignment"),
    ("app.toml", 'cookie_salt = "{s}"', GENERIC, "assignment"),
    ("nb.ipynb", '    "token = \\"{s}\\"\\n",', GENERIC, "assignment"),
    ("deploy.sh", "curl --password={s} host", "hunter2hunter2", "assignment"),
    ("pip.conf", "index-url = https://{s}@pypi.example.org/simple", "me:pw4410", "password-in-url"),
]


@pytest.mark.parametrize(("path", "template", "secret", "kind"), KINDS)
def test_each_kind_is_found_and_only_the_secret_replaced(
    path: str, template: str, secret: str, kind: str
) -> None:
    text = "first line\n" + template.format(s=secret) + "\nlast line\n"
    out, found = redact_text(text, path)
    assert found == [Finding(path, 2, kind)]
    assert secret not in out
    replacement = "***" if kind == "password-in-url" else marker(kind)
    assert out == text.replace(secret, replacement)
    assert scan_text(out, path) == []
    assert secret not in repr(found) and secret not in warning(found[0])


def test_several_secrets_on_one_line_and_their_lines() -> None:
    text = f"a = 1\nids = ['{AWS_ID}', '{GITHUB}']\n\n\ntoken = '{GENERIC}'\n"
    out, found = redact_text(text, "x.py")
    assert found == [
        Finding("x.py", 2, "aws-access-key"),
        Finding("x.py", 2, "github-token"),
        Finding("x.py", 5, "assignment"),
    ]
    assert out == (
        "a = 1\nids = ['«redacted:aws-access-key»', '«redacted:github-token»']\n\n\n"
        "token = '«redacted:assignment»'\n"
    )


def test_a_private_key_block_goes_whole_and_the_lines_stay() -> None:
    block = ["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY, "-----END RSA PRIVATE KEY-----"]
    text = "before\n" + "\n".join(block) + "\nafter = 1\n"
    out, found = redact_text(text, "id_rsa")
    assert found == [Finding("id_rsa", 2, "private-key")]
    assert out == "before\n«redacted:private-key»" + "\n" * (len(block) - 1) + "\nafter = 1\n"
    assert out.count("\n") == text.count("\n")
    assert not any(b in out for b in PEM_BODY)
    # A service-account JSON holds the key on one line, with \n escapes.
    one = '{"private_key": "' + "\\n".join(block) + '\\n", "client_email": "a@b.c"}\n'
    out, found = redact_text(one, "sa.json")
    assert found == [Finding("sa.json", 1, "private-key")]
    assert out == '{"private_key": "«redacted:private-key»\\n", "client_email": "a@b.c"}\n'
    # A truncated key is redacted to the end rather than half kept.
    out, found = redact_text("k = 1\n" + "\n".join(block[:-2]) + "\n", "cut.pem")
    assert found == [Finding("cut.pem", 2, "private-key")] and PEM_BODY[0] not in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pw@host/simple", "https://***@host/simple"),
        ("https://ghp_abcdef@github.com/o/r", "https://***@github.com/o/r"),
        ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),
        ("ssh://deploy:hunter2@host/x", "ssh://***@host/x"),
        ("https://host/simple", "https://host/simple"),
        ("a https://u:p@h1/x and http://t@h2/y", "a https://***@h1/x and http://***@h2/y"),
        ("mailto:someone@example.org", "mailto:someone@example.org"),
        ("https://***@host/simple", "https://***@host/simple"),
    ],
)
def test_credentials_in_urls(text: str, expected: str) -> None:
    assert redact_urls(text) == expected
    data, found = redact_bytes(text.encode() + b"\xff", "requirements.txt")
    assert data == expected.encode() + b"\xff"
    assert [f.kind for f in found] == ["password-in-url"] * (text != expected) * text.count("@")


# -- what must not be flagged -------------------------------------------------------------

SHA = "7dac01f6e7b1b4c2a3e5f8d9c0b1a2e3f4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9"
PYPI = "https://files.pythonhosted.org/packages"
FALSE_POSITIVES: dict[str, str] = {
    "train.py": """
import os, requests
key = row["id"]
session = requests.Session()
password = os.environ["DB_PASSWORD"]
token = None
key = "id"
api_key = os.getenv("API_KEY")
secret = get_secret(name="prod")
cache_key = "model_weights_cache"
dataset_key = "imagenet1k"
sort_key = "ResNet50_v2"
session_key = "user_session_data"
SESSION_COOKIE_NAME = "sessionid"
token_url = "https://auth.example.org/oauth/token"
key_path = "/home/me/.ssh/id_ed25519"
password_field = "user_password"
for key, value in table.items():
    if token == "eyJhbGciOiJIUzI1NiJ9":
        pass
password: str | None = None
self.session = aiohttp.ClientSession(headers=headers)
key = f"{prefix}/{name}"
token = tokenizer.encode(text)[0]
API_KEY = "<your-key>"
password = "changeme"
secret = "xxxxxxxxxxxx"
token = "${GITHUB_TOKEN}"
key = "train/images/0001.png"
salt = bcrypt.gensalt()
model = "sk-learn-regression-baseline"
tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
max_tokens = 4096
key = jax.random.PRNGKey(0)
rng_key, subkey = jax.random.split(key)
session = tf.compat.v1.Session()
cookie_jar = http.cookiejar.CookieJar()
SECRET_KEY = env("SECRET_KEY")
pad_token = "[PAD]"
bos_token = "<|endoftext|>"
api_key = "OPENAI_API_KEY"
model_key = "meta-llama/Llama-2-7b-hf"
ckpt_key = "checkpoint-12000"
partition_key = "2024-01-15"
redis_key = "queue:jobs:pending"
s3_key = "datasets/imagenet/train-00001-of-01024.tar"
layer_key = "Conv2d_1x1_3"
hf_hub_download(repo_id="org/model", token=True)
""",
    "config.yaml": """
database:
  password: ${DB_PASSWORD}
  session_timeout: 3600
auth_token: "{{ vault_token }}"
api_key: <your-api-key>
secret_key: CHANGE_ME
cookie_domain: example.org
key_column: patient_id
token: null
region: us-east-1
""",
    ".env": """
PWD=/home/me/project
OLDPWD=/home/me
DB_PASSWORD=$DB_PASSWORD
API_KEY=
SESSION_LIFETIME=86400
""",
    "uv.lock": f"""
version = 1
[[package]]
name = "numpy"
version = "2.1.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "{PYPI}/numpy-2.1.0.tar.gz", hash = "sha256:{SHA}", size = 18874860 }}
""",
    "requirements.txt": f"""
numpy==2.1.0 --hash=sha256:{SHA}
git+ssh://git@github.com/org/repo.git@v1.2#egg=repo
keyring==25.0.0
tokenizers>=0.15
""",
    "package.json": """
{"name": "app", "keywords": ["token", "session"],
 "integrity": "sha512-ZtRsAbCdEf0123456789ghIJklMNopQRstUVwxYZ=="}
""",
}


@pytest.mark.parametrize("path", sorted(FALSE_POSITIVES))
def test_ordinary_code_and_configuration_are_not_flagged(path: str) -> None:
    text = FALSE_POSITIVES[path]
    assert scan_text(text, path) == []
    assert redact_text(text, path) == (text, [])


def test_bare_words_count_outside_source_code_only() -> None:
    line = f"password = {GENERIC}\n"
    assert scan_text(line, "app.py") == []  # an expression: a variable named like that
    assert scan_text(line, "app.ini") == [Finding("app.ini", 1, "assignment")]


def test_name_and_value_heuristics() -> None:
    assert [secret_name(n) for n in ("API_KEY", "apiKey", "db.password", "credentials")] == [
        "key",
        "key",
        "password",
        "credential",
    ]
    assert secret_name("secret_key_b64") == "key"
    assert [secret_name(n) for n in ("key_path", "token_url", "session_timeout", "monkeys")] == [
        None,
        None,
        None,
        "key",  # a last word ending in a secret word: the value test decides
    ]
    assert wordy("train2017") and wordy("model_weights_cache") and not wordy(GENERIC)
    assert entropy("aaaa") == 0.0 and entropy("abcd") == 2.0


# -- the property --------------------------------------------------------------------------


def _token(prefix: str, n: int, alphabet: str = ALNUM) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n).map(lambda s: prefix + s)


SECRETS = st.one_of(
    _token("AKIA", 16, string.ascii_uppercase + string.digits),
    _token("AIza", 35, ALNUM + "_-"),
    _token("ghp_", 36),
    _token("github_pat_", 40, ALNUM + "_"),
    _token("xoxp-", 30, ALNUM + "-"),
    _token("sk_live_", 24),
    _token("sk-proj-", 30).map(lambda s: s + "9"),
)
TEMPLATES = st.sampled_from(
    [
        "API_KEY = '{s}'\n",
        "{s}\n",
        'x = call(token="{s}", y=2)\n',
        "export TOKEN={s}\n",
        '{{"key": "{s}"}}\n',
        "https://user:{s}@host/x\n",
        "  - {s} # comment\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    secret=SECRETS,
    template=TEMPLATES,
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    path=st.sampled_from(["train.py", "config.yaml", ".env", "notes.txt"]),
)
def test_redacted_text_never_holds_the_secret(
    secret: str, template: str, before: str, after: str, path: str
) -> None:
    text = before + "\n" + template.format(s=secret) + after
    out, found = redact_text(text, path)
    assert secret not in out
    assert found and all(f.path == path for f in found)
    assert out.count("\n") == text.count("\n")
    assert scan_text(out, path) == []


@settings(max_examples=200, deadline=None)
@given(
    value=st.text(ALNUM + "+/=_-", min_size=16, max_size=64),
    word=st.sampled_from(
        ["API_KEY", "auth_token", "clientSecret", "db_password", "SALT", "session_cookie"]
    ),
)
def test_a_random_value_assigned_to_a_secret_name_never_survives(value: str, word: str) -> None:
    text = f'{word} = "{value}"\n'
    out, _ = redact_text(text, "settings.py")
    if out != text:  # flagged: nothing of the value may remain
        assert value not in out and scan_text(out, "settings.py") == []
    else:  # kept: only because it reads like words, a number, a path or a placeholder
        assert (
            wordy(value)
            or value.isdigit()
            or path_like(value)
            or placeholder(value)
            or entropy(value) < 3.0
        )


# -- bytes ------------------------------------------------------------------------------------


def test_binary_data_is_not_scanned_and_invalid_utf8_survives() -> None:
    binary = b"\x00\x01" + f"API_KEY='{OPENAI}'".encode()
    assert redact_bytes(binary, "model.bin") == (binary, [])
    data = b"\xff\xfe latin-1 \xe9\n" + f"k = '{AWS_ID}'\n".encode()
    out, found = redact_bytes(data, "x.py")
    assert out == b"\xff\xfe latin-1 \xe9\nk = '" + marker("aws-access-key").encode() + b"'\n"
    assert found == [Finding("x.py", 2, "aws-access-key")]


def test_secret_facts_are_empty_without_secrets() -> None:
    f = Finding("a.py", 3, "jwt")
    assert secret_facts([], False) == {}
    assert secret_facts([f], False) == {"redacted": [{"path": "a.py", "line": 3, "kind": "jwt"}]}
    assert secret_facts([], True) == {"secrets_allowed": True}
    assert secret_facts([f], True) == {"secrets_allowed": True, "secrets_kept": [f.to_json()]}
    assert Finding.from_json(f.to_json()) == f


# -- git patches ----------------------------------------------------------------------------


def _repo(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "base")
    return path


def _diff(path: Path) -> bytes:
    return subprocess.run(
        ["git", "-C", str(path), "diff", "HEAD", "--binary", "--no-color"],
        capture_output=True,
        check=True,
    ).stdout


def test_a_patch_is_redacted_by_file_and_new_line_and_still_applies(tmp_path: Path) -> None:
    base = "\n".join(f"line {i}" for i in range(1, 21)) + "\n"
    old_key = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
    repo = _repo(
        tmp_path / "p",
        {
            "train.py": base.encode(),
            "src/cfg.py": f"A = 1\nKEY_ID = '{old_key}'\nB = 2\n".encode(),
            "blob.bin": bytes(range(256)) * 4,
            "spaced nämé.txt": b"x\n",
        },
    )
    lines = base.splitlines()
    lines[2] = f"API_KEY='{OPENAI}'"  # new line 3
    lines.insert(15, f"aws = '{AWS_ID}'")  # new line 16
    (repo / "train.py").write_text("\n".join(lines) + "\n")
    (repo / "src/cfg.py").write_text("A = 1\nKEY_ID = os.environ['KEY_ID']\nB = 2\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)) * 3 + f"{GITHUB}".encode())
    (repo / "spaced nämé.txt").write_text(f"x\ntoken: {GENERIC}\n")
    (repo / "new.pem").write_text(
        "\n".join(["-----BEGIN PRIVATE KEY-----", *PEM_BODY, "-----END PRIVATE KEY-----"]) + "\n"
    )
    git(repo, "add", "new.pem")
    patch = _diff(repo)
    out, found = redact_patch(patch)
    assert sorted(found, key=lambda f: (f.path, f.line)) == [
        Finding("new.pem", 1, "private-key"),
        Finding("spaced nämé.txt", 2, "assignment"),
        Finding("src/cfg.py", 2, "aws-access-key"),  # the removed line, by its old line
        Finding("train.py", 3, "openai-key"),
        Finding("train.py", 16, "aws-access-key"),
    ]
    for secret in (OPENAI, AWS_ID, old_key, GENERIC, *PEM_BODY):
        assert secret.encode() not in out
    assert out.count(b"\n") == patch.count(b"\n")
    assert scan_text(out.decode("utf-8", "replace"), "diff.patch") == []
    # The binary hunk is untouched (base85 is not scanned), so the binary part applies.
    assert out.split(b"GIT binary patch")[1][:200] == patch.split(b"GIT binary patch")[1][:200]
    # Added lines keep their place: without the removed-line file the patch applies.
    git(repo, "reset", "-q", "--hard")
    kept = b"diff --git" + b"diff --git".join(
        part for part in out.split(b"diff --git")[1:] if not part.startswith(b" a/src/cfg.py")
    )
    subprocess.run(["git", "-C", str(repo), "apply", "-"], input=kept, check=True)
    applied = (repo / "train.py").read_text().splitlines()
    assert applied[2] == "API_KEY='«redacted:openai-key»'"
    assert applied[15] == "aws = '«redacted:aws-access-key»'"
    assert (repo / "blob.bin").read_bytes().endswith(GITHUB.encode())


def test_a_patch_without_secrets_is_returned_as_is(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "p", {"a.py": b"x = 1\n"})
    (repo / "a.py").write_text("x = 2\nkey = row['id']\n")
    patch = _diff(repo)
    assert redact_patch(patch) == (patch, [])
    assert redact_patch(b"") == (b"", [])
