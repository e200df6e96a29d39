"""The deploy wing: what a user runs on real photos once a generator exists.

photo_io (decode / encode photos with their metadata) -> inference (tiled enhancement of any
size) -> batch (the enhance command's files, outputs and run) -> compare (the before / after
page) -> export (TorchScript / ONNX, and the parity check) -> pretrained (the shipped models and
their registry).

May import (exactly these; tests/test_layout.py holds the code to this list): the root's
gan.checkpoint, gan.errors, gan.fsio, gan.networks, gan.pixels and gan.runtime. Never imports
train or the data wing.
"""
