"""Operations: what the CLI and the Python API do, built on the store."""
