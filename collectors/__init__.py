"""CivicWatt collectors."""
