"""The 2030.5 function sets, one module each; pure handlers over edge.bridge.state."""
