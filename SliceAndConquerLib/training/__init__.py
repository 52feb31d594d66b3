"""Training commands (`snc train f2d`, later `snc train f3d`)."""
