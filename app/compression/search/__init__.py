"""Auto-compression search: which candidates to try, and which to recommend."""
