"""The store: packs, the LMDB index, objects and refs, and the write/read paths."""
