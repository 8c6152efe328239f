"""Benchmarks of the provider against its emulator: `python -m benchmarks` (see README.md here)."""
