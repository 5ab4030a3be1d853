"""Exact, seeded ratio mixing of a corpus's tasks: the schedule (pure functions) and the mix files.
No torch here: the torch datasets over a mix live in :mod:`owl_train.data.mix_dataset`.
"""
