"""The foundation floor: error types, atomic file writes, where the configs are, config helpers and
the package's version. It imports nothing else of the package; every other floor may import it."""

__version__ = "0.1.0"  # pyproject.toml's; written into pack cards and model cards
