"""The runtime kit: what every runtime whose endpoints are mlctl's endpoint hosts is composed of, belonging to
none of them (docs/architecture.md, "Where a new runtime plugs in").

- `operations.HostedRuntime`: the operations commands ask of a running endpoint (keys, status, logs, usage);
- `hostview`: the per-run view of the endpoint hosts (`HostedContext`, which drivers get);
- `drivers`: the endpoint, deployment and traffic drivers, parametrized by spec maker, launcher and platform;
- `records`: the model and environment drivers; `store`, `snapshot`: the model store and code snapshots;
- `virtualenvimages`, `virtualenvs`, `pythons`, `buildgroup`: images as virtualenvs on this machine;
- `servingspec`, `servercommand`, `processusage`: the serving spec, the scoring server's command line, /proc usage;
- `cache`: what outlives a deployment (virtualenvs, models, snapshots), listed and pruned.

Imports nothing here: a Ray worker imports `servercommand` without mlctl's dependencies.
"""
