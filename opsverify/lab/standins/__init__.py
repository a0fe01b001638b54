"""Stand-ins for what cannot run in the lab: Cloudflare, Infisical, Proxmox VE, tailscale, zfs."""
