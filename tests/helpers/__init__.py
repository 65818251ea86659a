"""Helpers of the tests, a module per kind: commands, faces, training, small networks, a weights server."""
