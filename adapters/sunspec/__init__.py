"""SunSpec: model layouts from pysunspec2's definitions and discovery (pure, no sockets)."""
