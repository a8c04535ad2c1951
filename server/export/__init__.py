"""Fine-tuning formats and the streaming export writer."""
