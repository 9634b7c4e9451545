"""CivicWatt models."""
