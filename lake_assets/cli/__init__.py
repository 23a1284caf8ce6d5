"""The `python -m` entry points. Each builds what it needs from the settings and calls the library;
none is imported by the library or the definitions."""
