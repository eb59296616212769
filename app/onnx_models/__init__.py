"""Uploaded and produced ONNX models: upload, inspect, list, download, delete."""
