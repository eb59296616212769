"""Passes: each module is one transform of an ONNX model, registered by its `type`."""
