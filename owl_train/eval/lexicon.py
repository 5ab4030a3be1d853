"""The category lexicon of eval's figures: :mod:`owl_train.data.lexicon` (beside the data path, since
``owl-train infer --pick`` names categories by it too), importable here as before."""

from owl_train.data.lexicon import LEXICON_FILE, Category, Lexicon, Mention, load_lexicon, normalize_text

__all__ = ["Category", "Lexicon", "Mention", "load_lexicon", "normalize_text", "LEXICON_FILE"]
