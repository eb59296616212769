"""ONNX plumbing shared by passes and measurement: loading, inspecting, preparing, packaging."""
