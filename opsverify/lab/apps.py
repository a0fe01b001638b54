"""What each application of the twin is: the HTTP answers, healthcheck, secrets and config files.

Knowledge of the applications (which endpoint Radarr answers, where Jellyseerr keeps its
settings) lives here; which applications exist, where, on which port and wired to what comes
from the SSOT. A container the table does not know still runs: it answers `/` with 200.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsverify.ssot import Ssot
from opsverify.ssot.model import Container

from .formats import XSI, Doc, E, Json, Sqlite, Tag, Text, Toml, Xml, Yaml

CONFIG_ROOT = "/mnt/docker"  # each app's /config is /mnt/docker/<container> on its VM
HTML = "<!doctype html><html><head><title>{title}</title></head><body></body></html>"


@dataclass(frozen=True)
class Rule:
    """One twin-httpd rule: `-r "PATH STATUS ..."`, optional `-a AUTH`, optional `-f FAIL`."""

    spec: str
    auth: str | None = None
    fail: str | None = None

    def argv(self) -> list[str]:
        out = ["-r", self.spec]
        if self.auth:
            out += ["-a", self.auth]
        if self.fail:
            out += ["-f", self.fail]
        return out


@dataclass(frozen=True)
class Profile:
    """An application's behaviour in the twin."""

    title: str
    kind: str = "web"                 # web | arr | sabnzbd | jellyfin | navidrome | jellyseerr ...
    version: str = "1.0.0"
    api: str = "v1"                   # *arr API version
    health: str = "/"                 # path the healthcheck GETs
    health_accepts_401: bool = False  # trailarr (P3: "healthcheck accepts 401 as healthy")
    secrets: tuple[str, ...] = ()     # SSOT secret keys passed as ${VAR} in compose
    files: Callable[[Ctx, Container], dict[str, Doc]] | None = None
    env: Callable[[Ctx, Container], dict[str, str]] | None = None  # non-secret settings
    command: str = "httpd"            # httpd | node-exporter
    extra: tuple[Rule, ...] = field(default_factory=tuple)


class Ctx:
    """What a profile may ask about the twin: the SSOT, secret values and addresses."""

    def __init__(self, ssot: Ssot, secrets: dict[str, str], seed: str):
        self.ssot, self.secrets, self.seed = ssot, secrets, seed
        self.by_name = {}
        for c in ssot.containers:
            self.by_name.setdefault(c.name, c)

    def secret(self, name: str) -> str:
        """The value of an SSOT secret key, or of a twin-only secret (named `app.what`)."""
        return self.secrets[name]

    def api_key(self, app: str) -> str:
        """An app's own API key: its SSOT secret (RADARR_API_KEY) when the SSOT has one."""
        key = f"{app.upper().replace('-', '_')}_API_KEY"
        return self.secrets.get(key) or self.secrets.get(f"{app}.apikey", "")

    def ident(self, label: str, hex_len: int = 32) -> str:
        """A stable id for this twin (same on every reset): hex derived from the twin's seed."""
        return hashlib.sha256(f"{self.seed}:{label}".encode()).hexdigest()[:hex_len]

    def uuid(self, label: str) -> str:
        return str(uuid.UUID(self.ident(label), version=4))

    def url(self, source: Container, target: str) -> str:
        """How `source` reaches container `target`: Docker DNS on one VM, Tailscale IP across."""
        t = self.by_name.get(target)
        if t is None:
            return ""
        port = t.ports[0].container if t.ports else 80
        if t.host == source.host:
            return f"http://{t.name}:{port}"
        host = self.ssot.hosts[t.host]
        return f"http://{host.vantage_ip}:{t.ports[0].host if t.ports else port}"

    def route_of(self, c: Container) -> str | None:
        """The public URL routed to this container, if any."""
        for r in self.ssot.routes:
            if r.host == c.host and any(p.host == r.port for p in c.ports):
                return f"https://{r.hostname}"
        return None


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


# ---- HTTP answers ----------------------------------------------------------------------------

def rules(ctx: Ctx, c: Container) -> list[Rule]:
    """twin-httpd rules for a container: its API, its health path, `/` as the SSOT routes say."""
    p = profile(c)
    out: list[Rule] = list(p.extra)
    key_env = f"{c.name.upper().replace('-', '_')}_API_KEY"
    if p.kind == "arr":
        out.append(Rule(f"/api/{p.api}/system/status 200 application/json "
                        + json.dumps(_arr_status(ctx, c, p), separators=(",", ":")),
                        auth=f"arr X-Api-Key {key_env}"))
        out.append(Rule('/ping 200 application/json {"status":"OK"}'))
    elif p.kind == "sabnzbd":
        out.append(Rule("/api 200 application/json " + json.dumps(_sab_queue(p)),
                        auth=f"query apikey {key_env}",
                        fail='403 application/json {"status":false,"error":"API Key Incorrect"}'))
    elif p.kind == "jellyfin":
        out.append(Rule("/health 200 text/plain Healthy"))
        info = {"LocalAddress": f"http://{ctx.ssot.hosts[c.host].vantage_ip}:{_port(c)}",
                "ServerName": ctx.ssot.hosts[c.host].hostname, "Version": p.version,
                "ProductName": "Jellyfin Server", "OperatingSystem": "",
                "Id": ctx.ident("jellyfin.id"), "StartupWizardCompleted": True}
        out.append(Rule("/System/Info/Public 200 application/json " + json.dumps(info)))
    elif p.kind == "navidrome":
        out.append(Rule("/rest/ping.view 200 subsonic", auth="subsonic NAVIDROME_USER "
                                                              "NAVIDROME_PASSWORD"))
        out.append(Rule("/rest/ping 200 subsonic", auth="subsonic NAVIDROME_USER "
                                                         "NAVIDROME_PASSWORD"))
        out.append(Rule("/ping 200 text/plain ."))
    elif p.kind == "jellyseerr":
        status = {"version": p.version, "commitTag": f"v{p.version}", "updateAvailable": False,
                  "commitsBehind": 0, "restartRequired": False}
        out.append(Rule("/api/v1/status 200 application/json " + json.dumps(status)))
    elif p.kind == "flaresolverr":
        body = {"msg": "FlareSolverr is ready!", "version": p.version,
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                             "Gecko) Chrome/126.0.0.0 Safari/537.36"}
        out.append(Rule("/ 200 application/json " + json.dumps(body)))
    if not any(r.spec.startswith("/ ") for r in out):
        out.append(root_rule(ctx, c))
    return out


def root_rule(ctx: Ctx, c: Container, status: int | None = None) -> Rule:
    """`/`: what the SSOT's route expects of it (a redirect stays a redirect), else 200."""
    for r in ctx.ssot.routes:
        if r.host == c.host and any(p.host == r.port for p in c.ports) and status is None:
            if 300 <= r.status < 400:
                return Rule(f"/ {r.status} {r.location or '/'}")
            status = r.status
    return Rule(f"/ {status or 200} text/html " + HTML.format(title=profile(c).title))


def login_rule(c: Container) -> Rule:
    return Rule("/login 200 text/html " + HTML.format(title=f"{profile(c).title} - Sign in"))


def _port(c: Container) -> int:
    return c.ports[0].host if c.ports else 0


def _arr_status(ctx: Ctx, c: Container, p: Profile) -> dict[str, Any]:
    return {
        "appName": p.title, "instanceName": p.title, "version": p.version,
        "buildTime": "2025-01-12T10:41:02Z", "isDebug": False, "isProduction": True,
        "isAdmin": False, "isUserInteractive": False, "startupPath": "/app/bin",
        "appData": "/config", "osName": "ubuntu", "osVersion": "24.04", "isNetCore": True,
        "isLinux": True, "isOsx": False, "isWindows": False, "isDocker": True,
        "mode": "console", "branch": "master", "authentication": "external",
        "sqliteVersion": "3.46.1", "migrationVersion": 241, "urlBase": "",
        "runtimeVersion": "8.0.12", "runtimeName": ".NET", "startTime": "2026-02-08T09:00:00Z",
        "packageVersion": p.version, "packageAuthor": "linuxserver.io",
        "packageUpdateMechanism": "docker", "databaseType": "sqLite",
        "databaseVersion": "3.46.1", "isMonoRuntime": False,
    }


def _sab_queue(p: Profile) -> dict[str, Any]:
    return {"queue": {
        "version": p.version, "paused": False, "pause_int": "0", "paused_all": False,
        "diskspace1": "3978.31", "diskspace2": "3978.31", "diskspace1_norm": "3.9 T",
        "diskspace2_norm": "3.9 T", "diskspacetotal1": "5543.63", "diskspacetotal2": "5543.63",
        "speedlimit": "100", "speedlimit_abs": "", "have_warnings": "0", "finishaction": None,
        "quota": "0 ", "have_quota": False, "left_quota": "0 ", "cache_art": "0",
        "cache_size": "0 B", "kbpersec": "0.00", "speed": "0 ", "mbleft": "0.00", "mb": "0.00",
        "sizeleft": "0 B", "size": "0 B", "noofslots_total": 0, "noofslots": 0, "start": 0,
        "limit": 0, "finish": 0, "status": "Idle", "timeleft": "0:00:00", "slots": []}}


def health_cmd(c: Container, address: str, port: int, p: Profile) -> list[str]:
    """The container's healthcheck: busybox wget against its own endpoint (or its pid 1)."""
    if not port:
        return ["CMD-SHELL", "kill -0 1"]  # no web endpoint: is the main process alive
    url = f"http://{address}:{port}{p.health}"
    if p.health_accepts_401:
        return ["CMD-SHELL", (f"out=$(timeout 2 wget -q -O /dev/null {url} 2>&1) || "
                             "echo \"$out\" | grep -q ' 401 '")]
    return ["CMD-SHELL", f"timeout 2 wget -q -O /dev/null {url} || exit 1"]


# ---- config files ----------------------------------------------------------------------------

def _arr_config(port: int, title: str, branch: str = "master") -> Callable[[Ctx, Container],
                                                                           dict[str, Doc]]:
    def files(ctx: Ctx, c: Container) -> dict[str, Doc]:
        cfg = E("Config", E("BindAddress", "*"), E("Port", _cport(c, port)), E("SslPort", 9898),
                E("EnableSsl", "False"), E("LaunchBrowser", "False"),
                E("ApiKey", ctx.api_key(c.name)), E("AuthenticationMethod", "External"),
                E("AuthenticationRequired", "Enabled"), E("Branch", branch),
                E("LogLevel", "info"), E("SslCertPath", ""), E("SslCertPassword", ""),
                E("UrlBase", ""), E("InstanceName", title))
        out: dict[str, Doc] = {"config.xml": Xml(cfg, declaration=False, empty_pair=True)}
        if c.name == "prowlarr":
            out["prowlarr.db"] = _prowlarr_db(ctx, c)
        return out
    return files


def _cport(c: Container, default: int) -> int:
    return c.ports[0].container if c.ports else default


PROWLARR_DDL = """\
CREATE TABLE "Applications" (
  "Id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  "Name" TEXT NOT NULL,
  "Implementation" TEXT NOT NULL,
  "Settings" TEXT,
  "ConfigContract" TEXT,
  "SyncLevel" INTEGER NOT NULL,
  "Tags" TEXT
);
CREATE UNIQUE INDEX "IX_Applications_Name" ON "Applications" ("Name" ASC);
"""
SYNC_CATEGORIES = {"Radarr": [2000, 2010, 2020, 2030, 2040, 2045, 2050, 2060, 2070, 2080, 2090],
                   "Sonarr": [5000, 5010, 5020, 5030, 5040, 5045, 5050, 5090],
                   "Lidarr": [3000, 3010, 3030, 3040, 3050, 3060]}


def _prowlarr_db(ctx: Ctx, c: Container) -> Sqlite:
    rows = []
    for app, cats in SYNC_CATEGORIES.items():
        target = ctx.by_name.get(app.lower())
        if target is None or target.host != c.host:
            continue
        settings = {"prowlarrUrl": ctx.url(target, c.name), "baseUrl": ctx.url(c, target.name),
                    "apiKey": ctx.api_key(target.name), "syncCategories": cats}
        if app == "Radarr":
            settings["syncRejectBlocklistedTorrentHashesWhileGrabbing"] = False
        rows.append({"Name": app, "Implementation": app, "Settings": json.dumps(settings, indent=2),
                     "ConfigContract": f"{app}Settings", "SyncLevel": 2, "Tags": "[]"})
    return Sqlite(PROWLARR_DDL, {"Applications": rows}, {"Applications": {"Settings": 2}})


def _jellyfin_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    host = ctx.ssot.hosts[c.host]
    system = E(
        "ServerConfiguration", E("LogFileRetentionDays", 3), E("IsStartupWizardCompleted", True),
        E("CachePath", "/cache"), E("PreviousVersionStr", PROFILES["jellyfin"].version),
        E("EnableMetrics", False), E("EnableNormalizedItemByNameIds", True),
        E("IsPortAuthorized", True), E("QuickConnectAvailable", True),
        E("EnableCaseSensitiveItemIds", True), E("MetadataPath", ""),
        E("PreferredMetadataLanguage", "en"), E("MetadataCountryCode", "US"),
        E("SortRemoveWords", E("string", "the"), E("string", "a"), E("string", "an")),
        E("MinResumePct", 5), E("MaxResumePct", 90), E("MinResumeDurationSeconds", 300),
        E("LibraryMonitorDelay", 60), E("ImageSavingConvention", "Legacy"),
        E("ServerName", host.hostname), E("UICulture", "en-US"), E("SaveMetadataHidden", False),
        E("RemoteClientBitrateLimit", 0), E("EnableFolderView", False),
        E("PluginRepositories", E("RepositoryInfo", E("Name", "Jellyfin Stable"),
                                  E("Url", "https://repo.jellyfin.org/files/plugin/manifest.json"),
                                  E("Enabled", True))),
        E("ActivityLogRetentionDays", 30), **XSI)

    def library(path: str, kind: str) -> Xml:
        return Xml(E("LibraryOptions", E("Enabled", True), E("EnablePhotos", True),
                     E("EnableRealtimeMonitor", True),
                     E("EnableChapterImageExtraction", False),
                     E("PathInfos", E("MediaPathInfo", E("Path", path))),
                     E("SaveLocalMetadata", False), E("EnableInternetProviders", True),
                     E("AutomaticRefreshIntervalDays", 0),
                     E("PreferredMetadataLanguage", "en"), E("MetadataCountryCode", "US"),
                     E("SeasonZeroDisplayName", "Specials"), E("MetadataSavers", ""),
                     E("TypeOptions", E("TypeOptions", E("Type", kind),
                                        E("MetadataFetchers", E("string", "TheMovieDb")))),
                     **XSI))

    plugin = E("PluginConfiguration", E("Enabled", True), E("AllowUserOverride", True),
               E("LibreTranslateUrl", ""), E("LibreTranslateApiKey", ""),
               E("JellyseerrUrl", ctx.url(c, "jellyseerr")), E("JellyseerrExternalUrl",
                                                               _route(ctx, "jellyseerr")),
               E("SonarrUrl", ctx.url(c, "sonarr")), E("SonarrApiKey", ctx.api_key("sonarr")),
               E("RadarrUrl", ctx.url(c, "radarr")), E("RadarrApiKey", ctx.api_key("radarr")),
               E("DefaultMovieView", ""), E("DefaultShowsView", ""), **XSI)
    return {"config/system.xml": Xml(system),
            "root/default/Movies/options.xml": library("/media/movies", "Movie"),
            "root/default/Shows/options.xml": library("/media/tv", "Series"),
            "plugins/configurations/Jellyfin.Plugin.HomeScreenSections.xml": Xml(plugin)}


def _route(ctx: Ctx, name: str) -> str:
    c = ctx.by_name.get(name)
    return (ctx.route_of(c) or "") if c else ""


def _jellyseerr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    jf = ctx.by_name.get("jellyfin")

    def dvr(name: str, profile_name: str, directory: str, extra: dict[str, Any]) -> list[Any]:
        t = ctx.by_name.get(name)
        if t is None:
            return []
        host = t.name if t.host == c.host else ctx.ssot.hosts[t.host].vantage_ip
        port = _cport(t, 0) if t.host == c.host else _port(t)
        return [{"id": 0, "name": profile(t).title, "hostname": host, "port": port,
                 "apiKey": ctx.api_key(name), "useSsl": False, "baseUrl": "",
                 "activeProfileId": 4, "activeProfileName": profile_name,
                 "activeDirectory": directory, "tags": [], "is4k": False, "isDefault": True,
                 "externalUrl": "", "syncEnabled": False, "preventSearch": False,
                 "tagRequests": False, "overrideRule": [], **extra}]

    settings = {
        "clientId": ctx.uuid("jellyseerr.clientId"),
        "main": {"apiKey": ctx.secret("jellyseerr.apikey"), "applicationTitle": "Jellyseerr",
                 "applicationUrl": ctx.route_of(c) or "", "cacheImages": False,
                 "defaultPermissions": 32, "hideAvailable": False, "localLogin": True,
                 "mediaServerLogin": True, "newPlexLogin": True, "region": "",
                 "originalLanguage": "", "trustProxy": True, "mediaServerType": 2,
                 "partialRequestsEnabled": True, "locale": "en"},
        "jellyfin": {"name": ctx.ssot.hosts[jf.host].hostname if jf else "",
                     "ip": jf.name if jf and jf.host == c.host else
                     (ctx.ssot.hosts[jf.host].vantage_ip if jf else ""),
                     "port": _cport(jf, 8096) if jf else 8096, "useSsl": False, "urlBase": "",
                     "externalHostname": (ctx.route_of(jf) or "") if jf else "",
                     "jellyfinForgotPasswordUrl": "",
                     "libraries": [
                         {"id": ctx.ident("library.movies"), "name": "Movies", "enabled": True,
                          "type": "movie"},
                         {"id": ctx.ident("library.shows"), "name": "Shows", "enabled": True,
                          "type": "show"}],
                     "serverId": ctx.ident("jellyfin.id"),
                     "apiKey": ctx.secrets.get("JELLYFIN_API_KEY", "")},
        "radarr": dvr("radarr", "HD-1080p", "/media/movies", {"minimumAvailability": "released"}),
        "sonarr": dvr("sonarr", "HD-1080p", "/media/tv",
                      {"activeLanguageProfileId": 1, "activeAnimeProfileId": 4,
                       "activeAnimeProfileName": "HD-1080p", "activeAnimeDirectory": "/media/tv",
                       "seriesType": "standard", "animeSeriesType": "anime", "animeTags": [],
                       "enableSeasonFolders": True}),
        "public": {"initialized": True},
    }
    return {"settings.json": Json(settings, indent=1)}


def _posterizarr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    langs = ["xx", "en", "de"]
    excluded = ["Youtube", "Audiobooks"]
    config = {
        "WebUI": {"basicAuthEnabled": False},
        "ApiPart": {"tvdbapi": ctx.secret("posterizarr.tvdbapi"),
                    "tmdbtoken": ctx.secret("posterizarr.tmdbtoken"),
                    "FanartTvAPIKey": ctx.secret("posterizarr.fanart"), "PlexToken": "",
                    "JellyfinAPIKey": ctx.secrets.get("JELLYFIN_API_KEY", ""), "EmbyAPIKey": "",
                    "FavProvider": "tmdb", "WidthHeightFilter": "false",
                    "PreferredLanguageOrder": langs, "PreferredSeasonLanguageOrder": langs},
        "PlexPart": {"LibstoExclude": excluded, "PlexUrl": "", "UsePlex": "false",
                     "UploadExistingAssets": "false"},
        "JellyfinPart": {"LibstoExclude": excluded, "JellyfinUrl": ctx.url(c, "jellyfin"),
                         "UseJellyfin": "true", "UploadExistingAssets": "false",
                         "ReplaceThumbwithBackdrop": "false"},
        "EmbyPart": {"LibstoExclude": excluded, "EmbyUrl": "", "UseEmby": "false",
                     "UploadExistingAssets": "false", "ReplaceThumbwithBackdrop": "false"},
        "Notification": {"SendNotification": "false", "UseUptimeKuma": "false"},
        "PrerequisitePart": {"AssetPath": "/assets", "SkipAddText": "false",
                             "BackupPath": "/assetsbackup", "ManualAssetPath": "/manualassets",
                             "maxLogs": "5", "logLevel": "2", "LibraryFolders": "true",
                             "Posters": "true", "SeasonPosters": "true",
                             "BackgroundPosters": "false", "TitleCards": "false"},
        "OverlayPart": {"ImageProcessing": "true", "outputQuality": "92%"},
    }
    return {"config.json": Json(config, indent=2)}


RECYCLARR_HEADER = ("# yaml-language-server: $schema="
                    "https://schemas.recyclarr.dev/latest/config-schema.json\n\n"
                    "# Quality definitions and custom formats synced from the TRaSH Guides.\n")


def _recyclarr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """recyclarr.yml with its values behind Recyclarr's indirections, the way the scope's
    secrets policy wants them: Radarr's URL from the container's environment (RADARR_URL, see
    _recyclarr_env) and its key from secrets.yml; Sonarr's URL from secrets.yml and its key
    from the environment compose passes from Infisical (${SONARR_API_KEY})."""
    data: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    if "radarr" in ctx.by_name:
        secrets["radarr_apikey"] = ctx.api_key("radarr")
        data["radarr"] = {"movies": {"base_url": Tag("!env_var", "RADARR_URL"),
                                     "api_key": Tag("!secret", "radarr_apikey"),
                                     "delete_old_custom_formats": True,
                                     "quality_definition": {"type": "movie"},
                                     "quality_profiles": None, "custom_formats": None}}
    if "sonarr" in ctx.by_name:
        secrets["sonarr_url"] = ctx.url(c, "sonarr")
        data["sonarr"] = {"series": {"base_url": Tag("!secret", "sonarr_url"),
                                     "api_key": Tag("!env_var", "SONARR_API_KEY"),
                                     "delete_old_custom_formats": True,
                                     "quality_definition": {"type": "series"},
                                     "quality_profiles": None, "custom_formats": None}}
    return {"recyclarr.yml": Yaml(data, RECYCLARR_HEADER), "secrets.yml": Yaml(secrets)}


def _recyclarr_env(ctx: Ctx, c: Container) -> dict[str, str]:
    return {"RADARR_URL": ctx.url(c, "radarr")} if "radarr" in ctx.by_name else {}


def _autopulse_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """autopulse's config.toml (its example/config.toml layout): Jellyfin as its target, by
    the URL the SSOT's wiring expects (across VMs: Jellyfin's Tailscale IP)."""
    config: dict[str, Any] = {"app": {"hostname": "0.0.0.0", "port": _cport(c, 2875),
                                      "database_url": "sqlite://data/autopulse.db"},
                              "opts": {"check_path": True, "max_retries": 5},
                              "triggers": {"radarr": {"type": "radarr"},
                                           "sonarr": {"type": "sonarr"}}}
    if "jellyfin" in ctx.by_name:
        config["targets"] = {"jellyfin": {"type": "jellyfin", "url": ctx.url(c, "jellyfin"),
                                          "token": ctx.secret("autopulse.jellyfintoken")}}
    return {"config.toml": Toml(config)}


def _crosswatch_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """CrossWatch's config.json as it starts (cw_platform/config_base.py DEFAULT_CFG): Jellyfin
    not configured yet, as the audit found it ("Empty config")."""
    jellyfin = {"server": "", "access_token": "", "user_id": "", "device_id": "crosswatch",
                "username": "", "user": "", "auth_method": "", "server_version": "",
                "verify_ssl": False, "timeout": 15.0, "max_retries": 3}
    return {"config.json": Json({"jellyfin": jellyfin, "pairs": []}, indent=2)}


def _sabnzbd_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    return {"sabnzbd.ini": Text(
        "__version__ = 19\n__encoding__ = utf-8\n[misc]\nhost = ::\n"
        f"port = {_cport(c, 8080)}\nhttps_port = \"\"\n"
        f"api_key = {ctx.api_key(c.name)}\nnzb_key = {ctx.ident('sabnzbd.nzbkey')}\n"
        "url_base = /sabnzbd\nhost_whitelist = \ndownload_dir = /downloads/incomplete\n"
        "complete_dir = /downloads/complete\n[categories]\n[[*]]\nname = *\n"
        "[[movies]]\nname = movies\n[[tv]]\nname = tv\n[[audio]]\nname = audio\n")}



PROFILES: dict[str, Profile] = {
    "radarr": Profile("Radarr", "arr", "5.17.2.9580", "v3", "/ping", secrets=("RADARR_API_KEY",),
                      files=_arr_config(7878, "Radarr")),
    "sonarr": Profile("Sonarr", "arr", "4.0.12.2823", "v3", "/ping", secrets=("SONARR_API_KEY",),
                      files=_arr_config(8989, "Sonarr", "main")),
    "lidarr": Profile("Lidarr", "arr", "2.9.6.4552", "v1", "/ping", secrets=("LIDARR_API_KEY",),
                      files=_arr_config(8686, "Lidarr")),
    "prowlarr": Profile("Prowlarr", "arr", "1.30.2.4939", "v1", "/ping",
                        secrets=("PROWLARR_API_KEY",), files=_arr_config(9696, "Prowlarr")),
    "sabnzbd": Profile("SABnzbd", "sabnzbd", "4.4.1", secrets=("SABNZBD_API_KEY",),
                       files=_sabnzbd_files),
    "qbittorrent": Profile("qBittorrent", version="5.0.3"),
    "unpackerr": Profile("Unpackerr"),
    "recyclarr": Profile("Recyclarr", secrets=("RADARR_API_KEY", "SONARR_API_KEY"),
                         files=_recyclarr_files, env=_recyclarr_env),
    "flaresolverr": Profile("FlareSolverr", "flaresolverr", "3.3.21"),
    "soularr": Profile("Soularr", secrets=("LIDARR_API_KEY",)),
    "slskd": Profile("slskd"),
    "swaparr-radarr": Profile("Swaparr", secrets=("RADARR_API_KEY",)),
    "swaparr-sonarr": Profile("Swaparr", secrets=("SONARR_API_KEY",)),
    "swaparr-lidarr": Profile("Swaparr", secrets=("LIDARR_API_KEY",)),
    "trailarr": Profile("Trailarr", health="/api/v1/settings", health_accepts_401=True,
                        extra=(Rule('/api/v1/settings 401 application/json '
                                    '{"detail":"Not authenticated"}'),)),
    "posterizarr": Profile("Posterizarr", files=_posterizarr_files),
    "decypharr": Profile("Decypharr", secrets=("REAL_DEBRID_API_KEY",)),
    "huntarr": Profile("Huntarr"),
    "tdarr": Profile("Tdarr"),
    "autopulse": Profile("autopulse", health="/stats", secrets=("AUTOPULSE_PASSWORD",),
                         files=_autopulse_files,
                         extra=(Rule('/stats 200 application/json {"hashes":0,"pending":0}'),)),
    "crosswatch": Profile("CrossWatch", files=_crosswatch_files),
    "crowdsec": Profile("CrowdSec"),
    "watchtower": Profile("Watchtower"),
    "node-exporter": Profile("Node Exporter", command="node-exporter"),
    "jellyfin": Profile("Jellyfin", "jellyfin", "10.10.7", health="/health",
                        files=_jellyfin_files),
    "navidrome": Profile("Navidrome", "navidrome", "0.55.0", health="/ping",
                         secrets=("NAVIDROME_USER", "NAVIDROME_PASSWORD", "LASTFM_API_KEY",
                                  "LASTFM_SECRET", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET")),
    "jellyseerr": Profile("Jellyseerr", "jellyseerr", "2.5.2", health="/api/v1/status",
                          files=_jellyseerr_files),
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
