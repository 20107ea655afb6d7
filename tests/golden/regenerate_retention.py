"""Rewrite tests/golden/retention/*.json from the current retention decisions.

    .venv/bin/python -m tests.golden.regenerate_retention

Run this only after an intended change to the retention policy, and review the diff:
the goldens are what ``tests/unit/test_retention_policy.py`` holds the policy to, so
regenerating them to make a failing test pass defeats the test.
"""

from __future__ import annotations

import json
import sys

from tests.unit.test_retention_policy import CASES, GOLDEN, _decide


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for stale in GOLDEN.glob("*.json"):
        if stale.stem not in CASES:
            stale.unlink()
            print(f"removed {stale}")
    for name in sorted(CASES):
        path = GOLDEN / f"{name}.json"
        path.write_text(json.dumps(_decide(CASES[name]), indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
