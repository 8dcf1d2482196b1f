"""Where messages go: one small protocol, an SMTP relay and the outbox folder."""
