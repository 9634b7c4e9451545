"""Pydantic schemas of CivicWatt's configuration files, on the floor so every layer can use them."""
