"""Helpers of the SmoothSegNet Slicer module (a package, so Slicer does not take them for modules)."""
