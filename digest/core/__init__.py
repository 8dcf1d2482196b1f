"""The core every floor stands on: the data that crosses stages, the errors, the configuration."""
