"""The web: digest serve (unsubscribe, preferences, archive), the editors' preview, the email checks."""
