"""What every layer shares: configuration keys and their errors, batch fields, file writing."""
