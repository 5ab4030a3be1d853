"""Conventions shared by the data engine and the trainer: placeholders and the text forms of
points and boxes. Imports nothing else of the project.
"""
