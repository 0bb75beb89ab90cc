"""Scripts behind the README's small-scale comparisons."""
