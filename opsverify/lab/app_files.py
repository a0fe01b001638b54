"""Each application's config files, as the application itself writes them.

One writer per app (or per family, such as the *arr apps' config.xml): it returns the files
under the app's /config with the values the SSOT's wiring expects, in the app's real format
(formats.py). The profile table (apps.py) names the writer of each app.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from opsverify.ssot.model import Container

from .app_model import Ctx, app_port, host_port
from .formats import XSI, Doc, E, Json, Sqlite, Tag, Text, Toml, Xml, Yaml


def arr_config(port: int, title: str, branch: str = "master") -> Callable[[Ctx, Container],
                                                                           dict[str, Doc]]:
    """The writer of an *arr app's config.xml (and Prowlarr's application links)."""
    def files(ctx: Ctx, c: Container) -> dict[str, Doc]:
        cfg = E("Config", E("BindAddress", "*"), E("Port", app_port(c, port)), E("SslPort", 9898),
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


# The Jellyfin the twin runs: its profile's version (apps.py) and the one its system.xml says
# it last started as. Kept here, as the writer needs it and the table imports the writer.
JELLYFIN_VERSION = "10.10.7"


def jellyfin_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    host = ctx.ssot.hosts[c.host]
    system = E(
        "ServerConfiguration", E("LogFileRetentionDays", 3), E("IsStartupWizardCompleted", True),
        E("CachePath", "/cache"), E("PreviousVersionStr", JELLYFIN_VERSION),
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


def jellyseerr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    jf = ctx.by_name.get("jellyfin")

    def dvr(name: str, title: str, profile_name: str, directory: str,
            extra: dict[str, Any]) -> list[Any]:
        t = ctx.by_name.get(name)
        if t is None:
            return []
        host = t.name if t.host == c.host else ctx.ssot.hosts[t.host].vantage_ip
        port = app_port(t, 0) if t.host == c.host else host_port(t)
        return [{"id": 0, "name": title, "hostname": host, "port": port,
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
                     "port": app_port(jf, 8096) if jf else 8096, "useSsl": False, "urlBase": "",
                     "externalHostname": (ctx.route_of(jf) or "") if jf else "",
                     "jellyfinForgotPasswordUrl": "",
                     "libraries": [
                         {"id": ctx.ident("library.movies"), "name": "Movies", "enabled": True,
                          "type": "movie"},
                         {"id": ctx.ident("library.shows"), "name": "Shows", "enabled": True,
                          "type": "show"}],
                     "serverId": ctx.ident("jellyfin.id"),
                     "apiKey": ctx.secrets.get("JELLYFIN_API_KEY", "")},
        "radarr": dvr("radarr", "Radarr", "HD-1080p", "/media/movies",
                      {"minimumAvailability": "released"}),
        "sonarr": dvr("sonarr", "Sonarr", "HD-1080p", "/media/tv",
                      {"activeLanguageProfileId": 1, "activeAnimeProfileId": 4,
                       "activeAnimeProfileName": "HD-1080p", "activeAnimeDirectory": "/media/tv",
                       "seriesType": "standard", "animeSeriesType": "anime", "animeTags": [],
                       "enableSeasonFolders": True}),
        "public": {"initialized": True},
    }
    return {"settings.json": Json(settings, indent=1)}


def posterizarr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
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


def recyclarr_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """recyclarr.yml with its values behind Recyclarr's indirections, the way the scope's
    secrets policy wants them: Radarr's URL from the container's environment (RADARR_URL, see
    recyclarr_env) and its key from secrets.yml; Sonarr's URL from secrets.yml and its key
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


def recyclarr_env(ctx: Ctx, c: Container) -> dict[str, str]:
    return {"RADARR_URL": ctx.url(c, "radarr")} if "radarr" in ctx.by_name else {}


def autopulse_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """autopulse's config.toml (its example/config.toml layout): Jellyfin as its target, by
    the URL the SSOT's wiring expects (across VMs: Jellyfin's Tailscale IP)."""
    config: dict[str, Any] = {"app": {"hostname": "0.0.0.0", "port": app_port(c, 2875),
                                      "database_url": "sqlite://data/autopulse.db"},
                              "opts": {"check_path": True, "max_retries": 5},
                              "triggers": {"radarr": {"type": "radarr"},
                                           "sonarr": {"type": "sonarr"}}}
    if "jellyfin" in ctx.by_name:
        config["targets"] = {"jellyfin": {"type": "jellyfin", "url": ctx.url(c, "jellyfin"),
                                          "token": ctx.secret("autopulse.jellyfintoken")}}
    return {"config.toml": Toml(config)}


def crosswatch_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    """CrossWatch's config.json as it starts (cw_platform/config_base.py DEFAULT_CFG): Jellyfin
    not configured yet, as the audit found it ("Empty config")."""
    jellyfin = {"server": "", "access_token": "", "user_id": "", "device_id": "crosswatch",
                "username": "", "user": "", "auth_method": "", "server_version": "",
                "verify_ssl": False, "timeout": 15.0, "max_retries": 3}
    return {"config.json": Json({"jellyfin": jellyfin, "pairs": []}, indent=2)}


def sabnzbd_files(ctx: Ctx, c: Container) -> dict[str, Doc]:
    return {"sabnzbd.ini": Text(
        "__version__ = 19\n__encoding__ = utf-8\n[misc]\nhost = ::\n"
        f"port = {app_port(c, 8080)}\nhttps_port = \"\"\n"
        f"api_key = {ctx.api_key(c.name)}\nnzb_key = {ctx.ident('sabnzbd.nzbkey')}\n"
        "url_base = /sabnzbd\nhost_whitelist = \ndownload_dir = /downloads/incomplete\n"
        "complete_dir = /downloads/complete\n[categories]\n[[*]]\nname = *\n"
        "[[movies]]\nname = movies\n[[tv]]\nname = tv\n[[audio]]\nname = audio\n")}
