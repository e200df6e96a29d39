"""The evaluation wing: scoring generators and the classical baselines against DSLR targets, and
rendering what the scores say.

evaluate (methods on raw patches and full-size photos) -> loe (lightness order error) ->
baselines/{clhe, npea} (the paper's comparison methods) -> figures + report (the pictures and
the HTML page).

May import: the root (metrics, look, checkpoint, networks, runtime, fsio, config), data's
readers (dped, patches) and deploy (the decoder and tiled inference that `enhance` ships).
Never imports data's download code (fetch, archive) or train.
"""
