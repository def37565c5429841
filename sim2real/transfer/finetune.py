"""Transfer method: finetune (being written)."""
