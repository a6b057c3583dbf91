"""Conformance: cactus-client (an independent CSIP-AUS client) against the bridge."""
