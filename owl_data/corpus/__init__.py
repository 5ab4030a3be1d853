"""The corpus: its Arrow schemas, the shard writer and manifest, validation, statistics, the
layout prior and the HTML gallery.
"""
