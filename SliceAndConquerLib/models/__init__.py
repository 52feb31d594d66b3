"""The networks: f2D (click-driven 2D segmentation) and, built from it, f3D."""
