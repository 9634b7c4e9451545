"""CivicWatt dashboard."""
