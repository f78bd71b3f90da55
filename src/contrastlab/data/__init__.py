"""The labelled texts: each source read as it is, rows checked and split, tokenised, read back."""
