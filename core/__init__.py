"""The floor: registry, YAML loading with lines and limits, meter profiles, calendar and the shared vocabulary."""
