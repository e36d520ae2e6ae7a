"""Using a trained network: which network a checkpoint holds and loading it, validation (validate.py),
prediction, weight conversion, export to MINDIR or ONNX (with the record of the weights it holds), INT8
quantization, and ONNX Runtime as an inference engine."""
