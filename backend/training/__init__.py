"""Training helpers shared with evaluation: hole-mask generation and the like."""
