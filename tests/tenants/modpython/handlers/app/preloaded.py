"""Imported by PythonImport when the interpreter starts."""
LOADED = "yes"
