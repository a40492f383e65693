"""Sample metrics (the evaluation suite grows here; see DESIGN's evaluation protocol)."""
