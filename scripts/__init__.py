"""Scripts run from the Makefile or by hand (python scripts/NAME.py)."""
