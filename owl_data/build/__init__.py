"""The build stage: the driver (chunks, workers, resume), per-scene work, row constructors and the
resume content key. Reads sources, ingests, generates text and writes a corpus.
"""
