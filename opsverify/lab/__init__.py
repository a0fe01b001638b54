"""The lab: a twin of the homelab on one Linux machine."""
