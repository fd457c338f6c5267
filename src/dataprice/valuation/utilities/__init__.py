"""Buyers' learning tasks; each defines a game ``v(S)`` over the sellers."""
