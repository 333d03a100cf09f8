"""The data path: RecBole's split and windows without per-prefix rows, training batches,
full-ranking and sampled evaluation, and getting logs in (convert, download)."""
