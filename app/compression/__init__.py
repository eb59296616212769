"""Pure ONNX compression library, free of FastAPI, Celery and the database.

- `passes/`: the transforms (one module per pass), their configs, recipes and presets.
- `measure/`: latency, memory, size, fidelity and accuracy of models, alone or side by side.
- `graph/`: ONNX plumbing both use: loading and inspecting models, preparing messy exports,
  input shapes and synthetic inputs, `.npz` datasets, archives and transport encoding.
"""
