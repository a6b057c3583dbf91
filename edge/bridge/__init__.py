"""IEEE 2030.5 bridge: an HTTPS server for DER devices on the bess-edge topic tree (README.md)."""
