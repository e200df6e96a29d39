"""The deploy wing: what a user runs on real photos once a generator exists.

photo_io (decode / encode photos with their metadata) -> inference (tiled enhancement of any
size) -> batch (the enhance command's files, outputs and run) -> compare (the before / after
page) -> export (TorchScript / ONNX, and the parity check) -> pretrained (the shipped models and
their registry).

May import: the root's support modules (checkpoint, networks, runtime, fsio, config). Never imports
train or the data wing.
"""
