"""The lab: a twin of the homelab on one Linux machine, built from the SSOT.

    layout    where a twin keeps its files (state directory, namespace name)
    spec      the twin as it should be: computed from the SSOT and one `up`'s secrets
              (world: its records; compose, endpoints, seeds: the stack files, where the
              stand-ins listen, their state and the twin's credentials)
    apps      what each application answers, its healthcheck, secrets and config files
              (app_model, app_http, app_files)
    formats   config documents in the applications' real formats (XML, JSON, YAML, SQLite)
    hosts     a mount + UTS namespace per host: mounts, files, sshd, stand-in CLIs
    image     the one local image (busybox, twin-httpd, node-exporter) tagged per SSOT ref
    engine    each VM's dockerd and its containers, converged to the spec
    services  the HTTP stand-ins and Prometheus
    twin      up, reset, down (status: whether it is up; access: `exec` and `ssh` into it)
    drift     the drift scenarios; snapshot: what reset must reproduce; ready: readiness
"""
