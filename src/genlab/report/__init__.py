"""The HTML report (`genlab compare`) and its inline SVG plots."""
