"""Pure ONNX compression library: passes, recipes, model analysis and benchmarking."""
