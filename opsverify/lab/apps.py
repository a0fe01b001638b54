"""What each application of the twin is: the table of profiles, one per application it knows.

Knowledge of the applications (which endpoint Radarr answers, where Jellyseerr keeps its
settings) lives in these profiles and the modules they draw on: app_http.py for the HTTP
answers and healthcheck, app_files.py for the config files, app_model.py for the types. Which
applications exist, where, on which port and wired to what comes from the SSOT. A container
the table does not know still runs: it answers `/` with 200.
"""

from __future__ import annotations

from opsverify.ssot import Ssot
from opsverify.ssot.model import Container

from .app_files import (
    JELLYFIN_VERSION,
    arr_config,
    autopulse_files,
    crosswatch_files,
    jellyfin_files,
    jellyseerr_files,
    posterizarr_files,
    recyclarr_env,
    recyclarr_files,
    sabnzbd_files,
)
from .app_model import CONFIG_ROOT, Ctx, Profile, Rule

# Ctx and CONFIG_ROOT are part of this module's face: callers build a Ctx as apps.Ctx.
__all__ = ["CONFIG_ROOT", "PROFILES", "Ctx", "Profile", "Rule", "profile", "twin_secret_names"]


def twin_secret_names(ssot: Ssot) -> list[str]:
    """Secrets the twin invents besides the SSOT's: API keys of apps the SSOT has none for."""
    keys = set(ssot.secret_keys)
    out = []
    for c in ssot.containers:
        p = PROFILES.get(c.name)
        if p and p.kind in ("arr", "sabnzbd") and \
                f"{c.name.upper().replace('-', '_')}_API_KEY" not in keys:
            out.append(f"{c.name}.apikey")
    return sorted(set(out) | {"jellyseerr.apikey", "posterizarr.tmdbtoken",
                              "posterizarr.tvdbapi", "posterizarr.fanart",
                              "autopulse.jellyfintoken"})


PROFILES: dict[str, Profile] = {
    "radarr": Profile("Radarr", "arr", "5.17.2.9580", "v3", "/ping", secrets=("RADARR_API_KEY",),
                      files=arr_config(7878, "Radarr")),
    "sonarr": Profile("Sonarr", "arr", "4.0.12.2823", "v3", "/ping", secrets=("SONARR_API_KEY",),
                      files=arr_config(8989, "Sonarr", "main")),
    "lidarr": Profile("Lidarr", "arr", "2.9.6.4552", "v1", "/ping", secrets=("LIDARR_API_KEY",),
                      files=arr_config(8686, "Lidarr")),
    "prowlarr": Profile("Prowlarr", "arr", "1.30.2.4939", "v1", "/ping",
                        secrets=("PROWLARR_API_KEY",), files=arr_config(9696, "Prowlarr")),
    "sabnzbd": Profile("SABnzbd", "sabnzbd", "4.4.1", secrets=("SABNZBD_API_KEY",),
                       files=sabnzbd_files),
    "qbittorrent": Profile("qBittorrent", version="5.0.3"),
    "unpackerr": Profile("Unpackerr"),
    "recyclarr": Profile("Recyclarr", secrets=("RADARR_API_KEY", "SONARR_API_KEY"),
                         files=recyclarr_files, env=recyclarr_env),
    "flaresolverr": Profile("FlareSolverr", "flaresolverr", "3.3.21"),
    "soularr": Profile("Soularr", secrets=("LIDARR_API_KEY",)),
    "slskd": Profile("slskd"),
    "swaparr-radarr": Profile("Swaparr", secrets=("RADARR_API_KEY",)),
    "swaparr-sonarr": Profile("Swaparr", secrets=("SONARR_API_KEY",)),
    "swaparr-lidarr": Profile("Swaparr", secrets=("LIDARR_API_KEY",)),
    "trailarr": Profile("Trailarr", health="/api/v1/settings", health_accepts_401=True,
                        extra=(Rule('/api/v1/settings 401 application/json '
                                    '{"detail":"Not authenticated"}'),)),
    "posterizarr": Profile("Posterizarr", files=posterizarr_files),
    "decypharr": Profile("Decypharr", secrets=("REAL_DEBRID_API_KEY",)),
    "huntarr": Profile("Huntarr"),
    "tdarr": Profile("Tdarr"),
    "autopulse": Profile("autopulse", health="/stats", secrets=("AUTOPULSE_PASSWORD",),
                         files=autopulse_files,
                         extra=(Rule('/stats 200 application/json {"hashes":0,"pending":0}'),)),
    "crosswatch": Profile("CrossWatch", files=crosswatch_files),
    "crowdsec": Profile("CrowdSec"),
    "watchtower": Profile("Watchtower"),
    "node-exporter": Profile("Node Exporter", command="node-exporter"),
    "jellyfin": Profile("Jellyfin", "jellyfin", JELLYFIN_VERSION, health="/health",
                        files=jellyfin_files),
    "navidrome": Profile("Navidrome", "navidrome", "0.55.0", health="/ping",
                         secrets=("NAVIDROME_USER", "NAVIDROME_PASSWORD", "LASTFM_API_KEY",
                                  "LASTFM_SECRET", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")),
    "jellyseerr": Profile("Jellyseerr", "jellyseerr", "2.5.2", health="/api/v1/status",
                          files=jellyseerr_files),
    "bazarr": Profile("Bazarr"),
    "wizarr": Profile("Wizarr"),
    "spotisub": Profile("Spotisub", secrets=("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET",
                                             "NAVIDROME_USER", "NAVIDROME_PASSWORD")),
    "subgen": Profile("Subgen", secrets=("JELLYFIN_API_KEY",)),
    "homarr": Profile("Homarr"),
}


def profile(c: Container) -> Profile:
    """The container's profile; an unknown app is a plain web app titled by its name."""
    return PROFILES.get(c.name) or Profile(c.name.replace("-", " ").title())
