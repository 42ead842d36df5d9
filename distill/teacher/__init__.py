"""BERT-family cross-encoder teachers: fine-tuning and transfer-set scoring."""
