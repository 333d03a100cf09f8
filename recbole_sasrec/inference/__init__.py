"""Using a trained model: recommendations in the data's tokens, files of them, attention maps."""
