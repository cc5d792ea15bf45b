"""Shared fixtures for the rehost test suite."""

from __future__ import annotations
