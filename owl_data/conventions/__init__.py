"""Conventions shared by the data engine and the trainer: placeholders, the text forms of
points and boxes, and the street taxonomy of category names (``taxonomy.yaml``). Imports nothing
else of the project.
"""
