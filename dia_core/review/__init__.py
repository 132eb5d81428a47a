"""Proof-listening and pickups: the producer's decisions (review.yaml), how a render honours them,
the take listing, and the local review page."""
