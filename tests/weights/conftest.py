"""tests/weights: weight files: the readers of every format (MindSpore, npz, safetensors, PyTorch, Paddle) and the
bound on their pickles, the one writer and its round trips, loading into networks, the head and stem names of each
source, and pretrained downloads."""
