"""The tiny multi-task corpus fixture of the mix tests, for the dataset tests here."""

from tests.owl_data.mix.conftest import tiny_corpus  # noqa: F401  (a fixture)
