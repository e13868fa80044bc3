"""vbtorch: the pure-PyTorch baseline LLM inference server of vbench."""
