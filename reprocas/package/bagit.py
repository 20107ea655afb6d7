"""Our own BagIt 1.0 writer and checker (RFC 8493): payload under ``data/``, the
``bagit.txt`` and ``bag-info.txt`` tag files, SHA-256 and SHA-512 payload and tag
manifests. Bags are held as ``{path: bytes}`` maps so a zip can be written deterministically."""

from __future__ import annotations

import hashlib

from reprocas.errors import IntegrityError

ALGORITHMS = ("sha256", "sha512")
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def _quote(path: str) -> str:
    # RFC 8493 2.1.3: CR, LF and % in file names are percent-encoded in manifests.
    return path.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def _unquote(path: str) -> str:
    return path.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def _manifest(files: dict[str, bytes], alg: str) -> bytes:
    lines = [f"{hashlib.new(alg, files[p]).hexdigest()}  {_quote(p)}\n" for p in sorted(files)]
    return "".join(lines).encode()


def make_bag(payload: dict[str, bytes], info: dict[str, str]) -> dict[str, bytes]:
    """The whole bag for ``payload`` (paths relative to ``data/``) and ``info``
    (bag-info.txt fields, written in sorted order; no date unless the caller puts one)."""
    files = {f"data/{p}": b for p, b in payload.items()}
    tags = head_tags(info, sum(len(b) for b in payload.values()), len(payload))
    for alg in ALGORITHMS:
        tags[f"manifest-{alg}.txt"] = _manifest(files, alg)
    return {**files, **tags, **tag_manifests(tags)}


def head_tags(info: dict[str, str], payload_bytes: int, payload_files: int) -> dict[str, bytes]:
    """``bagit.txt`` and ``bag-info.txt`` (its Payload-Oxum from the payload's size and
    count: they sort before ``data/``, so a streamed bag writes them first)."""
    fields = dict(info, **{"Payload-Oxum": f"{payload_bytes}.{payload_files}"})
    return {
        "bagit.txt": BAGIT_TXT,
        "bag-info.txt": "".join(f"{k}: {fields[k]}\n" for k in sorted(fields)).encode(),
    }


def tag_manifests(tags: dict[str, bytes]) -> dict[str, bytes]:
    """The tag manifests of ``tags`` (bagit.txt, bag-info.txt and the payload manifests)."""
    return {f"tagmanifest-{alg}.txt": _manifest(tags_only(tags), alg) for alg in ALGORITHMS}


def tags_only(tags: dict[str, bytes]) -> dict[str, bytes]:
    return {p: b for p, b in tags.items() if not p.startswith("tagmanifest-")}


def _parse(text: bytes, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, path = line.partition(" ")
        path = path.lstrip(" ").lstrip("*")
        if not sep or not digest or not path:
            raise IntegrityError(f"package: {name} line {n} is not 'DIGEST  PATH'", file=name)
        out[_unquote(path)] = digest.lower()
    return out


def check_bag(bag: dict[str, bytes]) -> None:
    """:func:`check_digests` of a bag held as bytes."""
    digests = {
        p: {**{alg: hashlib.new(alg, b).hexdigest() for alg in ALGORITHMS}, "size": str(len(b))}
        for p, b in bag.items()
    }
    check_digests({p: b for p, b in bag.items() if not p.startswith("data/")}, digests)


def check_digests(tags: dict[str, bytes], digests: dict[str, dict[str, str]]) -> None:
    """Refuse a bag whose declaration, payload or tag manifests do not hold, naming the
    file: every payload file must be listed in every manifest with its digest, and
    nothing listed may be missing. ``tags`` are the tag files' bytes; ``digests`` give
    every file of the bag (by its path in the bag) its SHA-256, SHA-512 and size, as
    computed while it was read."""
    if tags.get("bagit.txt", b"").split(b"\n")[0].strip() != b"BagIt-Version: 1.0":
        raise IntegrityError("package: bagit.txt is missing or not BagIt 1.0", file="bagit.txt")
    payload = {p for p in digests if p.startswith("data/")}
    tag_names = set(tags_only({p: b"" for p in digests if not p.startswith("data/")}))
    for alg in ALGORITHMS:
        for kind, files, skip in (("manifest", payload, False), ("tagmanifest", tag_names, True)):
            name = f"{kind}-{alg}.txt"
            if name not in tags:
                raise IntegrityError(f"package: {name} is missing", file=name)
            listed = _parse(tags[name], name)
            for path, digest in sorted(listed.items()):
                if path not in digests:
                    raise IntegrityError(
                        f"package: {path} is listed in {name} but missing", file=path
                    )
                if digests[path][alg] != digest:
                    raise IntegrityError(
                        f"package: {path} does not match its {alg} digest in {name}", file=path
                    )
            if not skip:
                for path in sorted(files - set(listed)):
                    raise IntegrityError(f"package: {path} is not listed in {name}", file=path)
    # Last: a missing or extra file is better named by the manifests above.
    info = tags.get("bag-info.txt", b"").decode("utf-8", "replace")
    oxum = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                 if ln.startswith("Payload-Oxum:")), None)  # fmt: skip
    have = f"{sum(int(digests[p]['size']) for p in payload)}.{len(payload)}"
    if oxum is not None and oxum != have:
        raise IntegrityError(
            f"package: bag-info.txt says Payload-Oxum {oxum}, the payload is {have}",
            file="bag-info.txt",
        )
