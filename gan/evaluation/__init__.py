"""The evaluation wing: scoring generators and the classical baselines against DSLR targets, and
rendering what the scores say.

evaluate (methods on raw patches and full-size photos) -> loe (lightness order error) ->
baselines/{clhe, npea} (the paper's comparison methods) -> figures + report (the pictures and
the HTML page).

May import (exactly these; tests/test_layout.py holds the code to this list): the root's
gan.checkpoint, gan.fsio, gan.look, gan.metrics, gan.pixels and gan.runtime; data's readers
gan.data.dped and gan.data.patches; deploy's gan.deploy.compare, gan.deploy.inference,
gan.deploy.photo_io and gan.deploy.pretrained (full-size photos are decoded, enhanced and shown
through the code `enhance` ships). Never imports data's download code (fetch, archive) or train.
"""
