"""Perceptual photo enhancement with GANs (Que & Lee): the paper at the root (networks, losses,
train, checkpoint, metrics; config: params.yaml as typed settings), data / evaluation / deploy
in their own wings."""
