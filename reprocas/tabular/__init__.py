"""Tables in the store: what a committed table holds, reading it as Arrow, diffing it.

This layer imports pyarrow; ``reprocas.store`` and ``reprocas.model`` never do.
"""
