"""CivicWatt: energy monitoring and carbon accounting for public institutions."""

__version__ = "0.1.0"
