"""Classical enhancement baselines the GAN is compared with (CLHE, NPEA)."""
