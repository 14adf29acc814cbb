"""Benchmarks: generated rule packs, a plain-Python reference and floor, peer engines."""
