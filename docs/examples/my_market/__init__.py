"""A user's own market parts for dataprice: a payment rule and a buyer (docs/extending.md)."""
