"""Calibration and evaluation datasets: `.npz` uploads checked without unpickling anything."""
