"""Speed scripts that print medians and ratios measured in the same run (not tests)."""
