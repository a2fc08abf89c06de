"""Candidate indexes over vectors, and the filter language."""
