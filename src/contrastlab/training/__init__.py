"""The training and embedding jobs: model, optimizer, precision, steps, checkpoints."""
