"""Evaluation: metrics per task, the point-grounding controls and the category lexicon.
"""
