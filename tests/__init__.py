"""The test suite; shared worlds and real loopback servers live in tests/support_*.py and tests/servers.py."""
