"""CivicWatt device_sim."""
