"""llmdata: pure functions and classes for records, normalization, features, filters and demo data.

Nothing here imports Beam or DeepSpeed, so every piece is testable with plain strings.
"""
