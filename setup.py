"""Shim for Beam's `--setup_file`: cluster workers build and install the package from it.
All metadata lives in pyproject.toml."""
from setuptools import setup

setup()
