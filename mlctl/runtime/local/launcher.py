"""The local runtime's launcher, "process" (its record names this module): the kit's process launcher, each
instance a scoring-server process on a unix socket of this machine (`mlctl.runtime.kit.processlauncher`)."""

from mlctl.runtime.kit.processlauncher import Launcher

__all__ = ["Launcher"]
