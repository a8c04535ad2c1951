"""Model-facing text: prompts (en, zh), parsing of model output, dedup, near-duplicates, judge verdicts."""
