"""Webhooks: the persistent webhook queue fed by the event outbox, its HTTP sender, the
payloads (mox-compatible) and Standard Webhooks signatures. docs/webhooks.md."""
