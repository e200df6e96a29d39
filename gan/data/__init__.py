"""The data wing: from a DPED source to aligned training patches, in pipeline order.

fetch (resumable, checksummed download) -> archive (safe unpacking, one normalised zip) ->
dped / pirm / sample (the three sources, read in DPED's layout) -> sources (each source made into
one DPED-layout zip, with its provenance) -> align + extract (registered 96x96 crops) -> npyio
(streamed .npy writing) -> patches (the training and validation tensors); all_pairs (the test
crops appended to the training arrays, for the shipped model only).

May import (exactly these; tests/test_layout.py holds the code to this list): the root's
gan.config, gan.fsio, gan.pixels and gan.runtime. Never imports train, the evaluation wing or
the deploy wing.
"""
