"""Evaluation: metrics per task, the point-grounding controls and the evaluate driver.
"""
