"""Two runs side by side, from ``reprocas.provenance.rundiff``."""

from __future__ import annotations

from html import escape
from typing import Any


def table(d: dict[str, Any]) -> str:
    a, b = d["a"]["ref"], d["b"]["ref"]
    rows = [("command", " ".join(d["command"]["a"]), " ".join(d["command"]["b"]))]
    p = d["params"]
    rows += [(f"param {k}", "", repr(v)) for k, v in p["added"].items()]
    rows += [(f"param {k}", repr(v), "") for k, v in p["removed"].items()]
    rows += [(f"param {k}", repr(c["from"]), repr(c["to"])) for k, c in p["changed"].items()]
    rows += [(f"input {i['dataset']}", str(i["a"]), str(i["b"])) for i in d["inputs"]]
    rows += [(f"metric {k}", str(m["a"]), str(m["b"])) for k, m in d["metrics"].items()]
    rows += [("code", str(d["code"]["a"].get("commit")), str(d["code"]["b"].get("commit")))]
    rows += [("environment", "same" if d["environment"]["same"] else "differs", "")]
    body = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(x)}</td><td>{escape(y)}</td></tr>" for k, x, y in rows
    )
    head = f"<tr><th></th><th>{escape(a)}</th><th>{escape(b)}</th></tr>"
    return f"<table class='compare'>{head}{body}</table>"
