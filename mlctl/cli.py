"""The command line: parses arguments, calls the engine, prints, sets the exit code.

Subcommands live in `mlctl/commands/<name>.py` (each defines a click command named
`command`) and are imported only when invoked, so `mlctl --help` starts fast.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> (module, one-line help). The module defines `command`.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("mlctl.commands.validate", "Check the configuration; exit 0 when valid, 1 otherwise."),
    "plan": ("mlctl.commands.plan", "Show what apply would change."),
    "apply": ("mlctl.commands.apply", "Make the runtime match the configuration (or a saved plan)."),
    "destroy": ("mlctl.commands.destroy", "Delete everything this project deployed."),
    "graph": ("mlctl.commands.graph", "Print the dependency graph (dot or mermaid)."),
    "state": ("mlctl.commands.state", "Inspect and move the state (list, show, versions, pull, push, migrate, ...)."),
    "show": ("mlctl.commands.show", "Show an endpoint: URIs, traffic, deployments, instances."),
    "list": ("mlctl.commands.listing", "List the endpoints of this project."),
    "invoke": ("mlctl.commands.invoke", "Send a scoring request to an endpoint."),
    "keys": ("mlctl.commands.keys", "Print or regenerate an endpoint's keys (the one command that prints them)."),
    "profile": ("mlctl.commands.profile", "Load a deployment at several concurrencies and recommend its sizing."),
    "logs": ("mlctl.commands.logs", "Print a deployment's logs."),
    "cache": ("mlctl.commands.cache", "Inspect or prune the shared image cache and model store."),
    "convert": (
        "mlctl.commands.convert",
        "Convert a v1 deployment (inferenceconfig.json, deploymentconfig.json) into YAML.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        try:
            return importlib.import_module(module).command
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise

    def format_commands(self, ctx, formatter):
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", default=".", metavar="DIR", help="Run as if started in DIR (the project).")
@click.option(
    "-f",
    "files",
    multiple=True,
    metavar="FILE",
    help="Config file to read (repeatable); default: every known YAML in the project.",
)
@click.option("--state", "state_path", default=None, metavar="FILE", help="State file (default DIR/.mlctl/state.json).")
@click.option(
    "--runtime",
    "runtime",
    default=None,
    metavar="NAME",
    help="Runtime for this run (local, docker, ray), over MLCTL_RUNTIME and the project file mlctl.yaml.",
)
@click.version_option(package_name="mlctl")
@click.pass_context
def group(ctx, directory, files, state_path, runtime):
    """mlctl deploys ML models as online scoring endpoints from Azure ML YAML.

    plan shows what would change; apply makes it so.
    """
    from mlctl.projectpaths import Project

    ctx.obj = Project.at(directory, files=files, state_path=state_path, runtime_override=runtime)
    if state_path is not None and not ctx.resilient_parsing:
        from mlctl.state.backends import check_state_option

        check_state_option(ctx.obj)  # --state is the local backend's: refused under a shared one


def main(argv=None) -> int:
    from mlctl.errors import MlctlError

    try:
        rv = group.main(args=argv, prog_name="mlctl", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):  # ctx.exit(N) is returned, not raised
            return rv
    except MlctlError as e:
        click.echo("\n".join(d.format() for d in e.diagnostics), err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return 1
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
