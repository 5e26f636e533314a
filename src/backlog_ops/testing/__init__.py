"""Test doubles that the test suite and the demo import (never used on a real request path)."""
