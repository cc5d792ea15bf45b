"""Image host clients: one module per API dialect, the presets, and the factory."""
