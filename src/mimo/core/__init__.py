"""The ground floor every package stands on: the user-facing error type and image reading."""
