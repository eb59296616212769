"""ModelPress: compression as a service for ONNX models."""
