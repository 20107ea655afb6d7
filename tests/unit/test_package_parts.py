"""The pure parts of reproducible packages: the BagIt writer/checker and the narrowed
requirements file."""

from __future__ import annotations

import pytest

from reprocas.errors import IntegrityError
from reprocas.package import bagit
from reprocas.package.requirements import imported, imports

FACTS = {
    "packages": [
        {"name": "pyarrow", "version": "17.0.0"},
        {"name": "scikit-learn", "version": "1.5.1"},
        {"name": "PyYAML", "version": "6.0.2"},
        {"name": "rich", "version": "13.9.4"},
    ]
}

CODE = {
    "train.py": b"import json, os\nimport pyarrow.parquet as pq\nfrom sklearn import svm\n"
    b"import yaml\nfrom helper import f\nfrom . import sibling\nimport notinstalled\n",
    "helper.py": b"import hashlib\n",
    "pkg/mod.py": b"import pkg.other\n",
    "broken.py": b"def (:\n",
    "README.md": b"import rich  # not Python\n",
}


def test_requirements_pin_only_what_the_code_imports() -> None:
    assert imports(CODE) == {"pyarrow", "sklearn", "yaml", "notinstalled"}
    text = imported(FACTS, CODE, "env/x@v1")
    pins = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert pins == ["pyarrow==17.0.0", "scikit-learn==1.5.1", "PyYAML==6.0.2"]
    assert "notinstalled" in text and "rich" not in text


def test_stdlib_only_code_needs_nothing() -> None:
    text = imported(FACTS, {"a.py": b"import json\nimport sys\n"}, "env/x@v1")
    assert [ln for ln in text.splitlines() if not ln.startswith("#")] == []


def test_bag_round_trip_with_awkward_names_and_each_lie_refused() -> None:
    payload = {"a.txt": b"a", "new\nline%.txt": b"b", "dir/space name": b""}
    bag = bagit.make_bag(payload, {"External-Description": "t"})
    bagit.check_bag(bag)
    assert b"new%0Aline%25.txt" in bag["manifest-sha256.txt"]
    with pytest.raises(IntegrityError, match=r"data/a\.txt"):
        bagit.check_bag({**bag, "data/a.txt": b"A"})
    with pytest.raises(IntegrityError, match=r"data/a\.txt .*missing"):
        bagit.check_bag({k: v for k, v in bag.items() if k != "data/a.txt"})
    with pytest.raises(IntegrityError, match=r"data/extra.*not listed"):
        bagit.check_bag({**bag, "data/extra": b"x"})
    with pytest.raises(IntegrityError, match=r"bag-info\.txt"):
        bagit.check_bag({**bag, "bag-info.txt": bag["bag-info.txt"] + b"X: y\n"})
    with pytest.raises(IntegrityError, match=r"bagit\.txt"):
        bagit.check_bag({**bag, "bagit.txt": b"BagIt-Version: 0.97\n"})
    forged = bagit.make_bag(payload, {"External-Description": "t"})
    info = forged["bag-info.txt"].replace(b"Payload-Oxum: 2.3", b"Payload-Oxum: 9.3")
    forged = bagit.make_bag(payload, {"Payload-Oxum": "9.3"})  # a forger's own oxum
    assert b"Payload-Oxum: 2.3" in forged["bag-info.txt"]  # make_bag always computes it
    tags = {k: v for k, v in bag.items() if not k.startswith("tagmanifest-")}
    tags["bag-info.txt"] = info
    with pytest.raises(IntegrityError, match="Payload-Oxum"):
        bagit.check_bag(dict(tags, **{
            f"tagmanifest-{a}.txt": bagit._manifest(bagit.tags_only(tags), a)
            for a in bagit.ALGORITHMS
        }))  # fmt: skip
