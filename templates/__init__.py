"""Jinja2 templates of generated files, one folder per preset.

A package (with this file) so ``importlib.resources`` and jinja2's
``PackageLoader`` find the templates in editable and wheel installs alike.
"""
