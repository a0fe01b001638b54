"""Fact collection: hosts over SSH, APIs over HTTPS; cached, saved and replayed."""
