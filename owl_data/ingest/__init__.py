"""Ingest: image decoding (EXIF, colour modes, limits), geometry resolution, number checks and
point sampling, shared by every source.
"""
