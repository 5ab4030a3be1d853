"""Exact, seeded ratio mixing of a corpus's tasks: ``schedule`` (the greedy order, pure functions),
``spec`` (what a mix draws), ``sampler`` (rows, sharding, resumption), ``io`` (the mix files) and
``stats`` (realised counts, prefix deviations). No torch here: the torch datasets over a mix live
in :mod:`owl_train.data.mix_dataset`.
"""
