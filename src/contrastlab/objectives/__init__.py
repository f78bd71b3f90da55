"""The losses and what they are built from: views, attention, layers, and one package per family."""
