"""The embedded default: drawn street scenes written in the sources' own formats.
"""
