"""markov (being written)."""

__all__: list[str] = []
