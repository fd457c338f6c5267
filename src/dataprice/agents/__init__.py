"""Seller and buyer behaviour: bidding strategies (and, later, the repeated Mesa market)."""
