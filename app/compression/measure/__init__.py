"""Measurement: latency, memory, size, fidelity and accuracy of models, alone or side by side."""
