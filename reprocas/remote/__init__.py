"""Remotes: a repository's packs, index segments and refs on object storage (issue 18).

``backend`` is the contract every storage backend meets (``file://`` directories and
``s3://`` buckets); the protocol built on it (push, pull, clone, fetch, prune) lives
beside it in this package.
"""
