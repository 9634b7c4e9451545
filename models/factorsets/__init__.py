"""Shipped factor sets (YAML data files)."""
