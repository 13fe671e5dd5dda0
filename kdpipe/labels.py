"""What a label can say besides a class or a token id: every layer that reads labels shares it."""

IGNORE = -100  # the label of positions and rows that do not count (padding; unmasked tokens in masked LM;
# rows whose label data.label_fraction hid). torch's cross_entropy ignores it by default.
