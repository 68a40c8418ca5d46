"""Side-by-side measurements of keras_tricks against native Keras."""
