"""opsverify: drift gates for a homelab media stack."""
