"""Delivery: messages, personalisation, the ledger, transports and the send loop."""
