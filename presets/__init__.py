"""Deploy presets, one module each. Installed as ``taskpack.presets``."""
