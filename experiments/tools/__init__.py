"""One-off tools beside the package: weight converters that need other frameworks."""
