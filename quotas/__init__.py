"""CivicWatt quotas."""
