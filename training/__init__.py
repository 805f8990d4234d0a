"""Training stages (pretrain, SFT, LoRA, reward) arrive with their issues; see docs/stages.md."""
