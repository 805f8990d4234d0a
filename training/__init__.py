"""Training: data.py serves the packed token files to PyTorch; the model and the training stages
(pretrain, SFT, LoRA, reward) arrive with their issues."""
