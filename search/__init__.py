"""xlsearch: the engine and the query side (settings, embedders, store, vector index, search)."""

__version__ = "0.1.0"
