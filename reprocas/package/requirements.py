"""The package's ``requirements.txt``: only the distributions the packaged code imports,
pinned to the versions the recorded environment had. (``requirements-lock.txt`` holds
every distribution; installing that needs the whole recorded environment, while a
reader replaying by hand needs only what the code uses.)"""

from __future__ import annotations

import ast
import sys
from typing import Any

from reprocas.environment.capture import normalise
from reprocas.environment.export import requirement

# Import names that differ from their distribution's name.
ALIASES = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "cv2": "opencv-python",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "attr": "attrs",
}


def imports(code: dict[str, bytes]) -> set[str]:
    """Top-level module names the code's Python files import (absolute imports), less
    the standard library and the code's own modules."""
    names: set[str] = set()
    own: set[str] = set()
    for path, data in code.items():
        parts = path.split("/")
        if path.endswith(".py"):
            own.add(parts[-1][:-3])
        own.update(parts[:-1])
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in own}


def imported(facts: dict[str, Any], code: dict[str, bytes], label: str) -> str:
    """Pinned requirement lines for what ``code`` imports, as the environment had it."""
    by_name = {normalise(p["name"]): p for p in facts.get("packages") or []}
    lines = [
        f"# The distributions the packaged code imports, as in {label}.",
        "# requirements-lock.txt pins every distribution of that environment.",
    ]
    missing = []
    for mod in sorted(imports(code)):
        pkg = by_name.get(normalise(ALIASES.get(mod, mod)))
        if pkg is None:
            missing.append(mod)
        else:
            lines.append(requirement(pkg))
    if missing:
        lines.append(
            "# imported, but no installed distribution of that name was recorded: "
            + ", ".join(missing)
        )
    if len(lines) == 2 and not missing:
        lines.append("# (the code imports only the standard library: nothing to install)")
    return "\n".join(lines) + "\n"
